// Subject layout. Client subjects are the public contract (PROTOCOL.md); peer subjects are private.
import type { ClientOp } from '../actors/protocol.ts';

export const CLIENT_OPS: readonly ClientOp[] = ['get', 'put', 'delete', 'members'];
export const SERVICE_NAME = 'zistore';
export const NODE_ID_PATTERN = /^[A-Za-z0-9_-]+$/;
export const CLUSTER_NAME_PATTERN = /^[A-Za-z0-9_-]+$/;

export const subjects = {
  client: (cluster: string, op: ClientOp) => `zistore.${cluster}.${op}`,
  nodeClient: (cluster: string, node: string, op: ClientOp) => `zistore.${cluster}.node.${node}.${op}`,
  peer: (cluster: string, node: string, type: string) => `zistore.${cluster}.peer.${node}.${type}`,
  peerAll: (cluster: string, node: string) => `zistore.${cluster}.peer.${node}.>`,
  /** Served by `zistore up`: shell commands that act on processes (kill, rmi-down, …). */
  admin: (cluster: string) => `zistore.${cluster}.admin`,
};
