// The keys a peer message is about, for the observer's message flow (in: ZiNode.handlePeer;
// out: ClientFront.askLeader).
import type { PeerMessage } from './protocol.ts';

export function messageKeys(message: PeerMessage): string[] {
  switch (message.type) {
    case 'invalidate':
      return message.entries.map((e) => e.key);
    case 'validate':
      return message.validated.map((v) => v.key);
    case 'forward':
      return message.commands.map((c) => c.key);
    case 'read':
      return message.keys;
    default:
      return [];
  }
}
