// Subject layout. Client subjects are the public contract (PROTOCOL.md); peer subjects are private.
import type { ClientOp } from '../actors/protocol.ts';

export const CLIENT_OPS: readonly ClientOp[] = ['get', 'put', 'delete', 'members', 'scan', 'txn', 'watch', 'keepalive'];
export const SERVICE_NAME = 'zistore';
export const NODE_ID_PATTERN = /^[A-Za-z0-9_-]+$/;
export const CLUSTER_NAME_PATTERN = /^[A-Za-z0-9_-]+$/;

export const subjects = {
  client: (cluster: string, op: ClientOp) => `zistore.${cluster}.${op}`,
  nodeClient: (cluster: string, node: string, op: ClientOp) => `zistore.${cluster}.node.${node}.${op}`,
  /** A node's change feed (PROTOCOL.md "Watch"): only that node publishes on it, clients subscribe. */
  changes: (cluster: string, node: string) => `zistore.${cluster}.node.${node}.changes`,
  /**
   * A peer message names its receiver and its sender: NATS permissions let a node publish only
   * as itself (`zistore.<c>.peer.*.<self>.>`), and the receiver takes the sender from here.
   */
  peer: (cluster: string, to: string, from: string, type: string) => `zistore.${cluster}.peer.${to}.${from}.${type}`,
  peerAll: (cluster: string, node: string) => `zistore.${cluster}.peer.${node}.>`,
  /** The sender named by a peer subject, or null when the subject has not the shape above. */
  peerSender: (subject: string): string | null => {
    const parts = subject.split('.');
    return parts.length === 6 && parts[2] === 'peer' ? parts[4]! : null;
  },
  /**
   * Each node's own reply inbox: no other identity may subscribe to it (nor publish to it, except
   * by answering the node's request). Clients keep `_INBOX` or their own prefix.
   */
  nodeInbox: (cluster: string, node: string) => `_ZI_INBOX.${cluster}.${node}`,
  /** Served by `zistore up`: shell commands that act on processes (kill, rmi-down, …). */
  admin: (cluster: string) => `zistore.${cluster}.admin`,
};
