// Protocol bugs the simulation found (details, seeds, traces in FINDINGS.md), each kept with the
// seeds that showed it as a regression test. No finding excuses a failing seed: a seed that breaks
// a promise fails the sweep, whether or not its bug is already known.

export interface Finding {
  id: string;
  status: 'fixed';
  title: string;
  /** Where in the core the cause is (or was). */
  where: string;
}

export const FINDINGS: Record<string, Finding> = {
  F1: {
    id: 'F1',
    status: 'fixed',
    title: 'a stale suspicion removes a re-admitted replica from the write targets while it holds a lease',
    where: 'actors/leader-term.ts suspect(): fixed by removal tokens that admit() cancels (remove())',
  },
  F2: {
    id: 'F2',
    status: 'fixed',
    title: 'a joiner whose final replica-set write fails stays in the replica set (leases) but leaves the write targets',
    where: 'actors/leader-term.ts transfer(): fixed (re-check after the last chunk; undo replicas.add when the persist fails)',
  },
  F3: {
    id: 'F3',
    status: 'fixed',
    title: 'a new leader without a complete copy serves what it holds when no complete replica answers one sync round',
    where: 'actors/leader-term.ts recover(): fixed (silent previous replicas are asked again, then the leader resigns)',
  },
  F4: {
    id: 'F4',
    status: 'fixed',
    title: 'a leader whose term ends while its session is suspended never resigns; the group stalls',
    where: 'actors/node.ts leaderEnded(): fixed (resignOnReconnect)',
  },
  F4b: {
    id: 'F4b',
    status: 'fixed',
    title: 'a resign() lost with a connection that was silently down is never retried; the group stalls (F4 again)',
    where: 'actors/node.ts resign(): fixed (a failed resign sets resignOnReconnect and is retried)',
  },
  F5: {
    id: 'F5',
    status: 'fixed',
    title: 'a replica refused its lease calls itself incomplete without flushing; a new leader discards its copy and serves an older one',
    where: 'actors/follower.machine.ts: fixed (only store.flushed makes a node incomplete)',
  },
  F6: {
    id: 'F6',
    status: 'fixed',
    title: 'two transfers to one joiner (a join retried with the same session): the older one fails and drops it from the targets; the newer one leaves it in the replica set',
    where: 'actors/leader-term.ts transfer(): fixed (each admission has its own token)',
  },
  F7: {
    id: 'F7',
    status: 'fixed',
    title: 'a joiner that took chunks of two admissions keeps a key deleted between them: a stale read',
    where: 'actors/node.ts snapshot handler: fixed (chunks carry their admission; a joiner takes its own only; a duplicate join request gets the same admission)',
  },
  F8: {
    id: 'F8',
    status: 'fixed',
    title: 'a target that answers NOT_READY for ever (it moved on to another join or session) stalls every write',
    where: 'actors/leader-term.ts ackFrom(): fixed (one that keeps refusing is removed like a silent one)',
  },
  F9: {
    id: 'F9',
    status: 'fixed',
    title: 'a joiner removed while its last chunk was in flight stays "still joining" on the leader: it never gets a lease and never re-joins',
    where: 'actors/leader-term.ts transfer(): fixed (the admission is forgotten, so its lease requests get NOT_REPLICA and it joins again)',
  },
  F10: {
    id: 'F10',
    status: 'fixed',
    title: 'a resign whose create went through but whose reply was lost leaves an election znode of ours ahead of us: nobody leads',
    where: 'coordination/coordinator.ts resignElection(): fixed (every znode of our session but the newest is removed)',
  },
  F11: {
    id: 'F11',
    status: 'fixed',
    title: 'a catch-up skips a write the joiner had acked but whose pending value a newer invalidate replaced: the copies differ for good',
    where: 'actors/replica-endpoint.ts join() / leader-term.ts transfer(): fixed (the rolled-back keys are sent as they stand)',
  },
  F12: {
    id: 'F12',
    status: 'fixed',
    title: 'a rolled-back key whose write the leader is re-committing goes to the joiner as a delete above that write: the write never lands there',
    where: 'actors/replica-store.ts stateOf(): fixed (the delete goes below a write of the key in flight)',
  },
  F13: {
    id: 'F13',
    status: 'fixed',
    title: 'after ZooKeeper lost its data, epochs count from 1 again: a node that heard of a later epoch (a late sync of the old term) refuses every leader for good',
    where: 'coordination/coordinator.ts claimEpoch(above) / actors/node.ts becomeLeader(): fixed (a claim goes above every epoch the claimer knows of)',
  },
  F14: {
    id: 'F14',
    status: 'fixed',
    title: 'after ZooKeeper lost its data, a leader rebuilt the replica set from an old one whose members had all been left out of a later set: acked writes lost',
    where: 'actors/leader-term.ts rememberedReplicaSet(): fixed (every node any answering node has seen in the cluster answers first; rosters kept on disk)',
  },
  F15: {
    id: 'F15',
    status: 'fixed',
    title: "nodes told a transaction's writes in the order their validates came: a watcher moving between nodes saw one revision in two orders",
    where: 'actors/change-log.ts committed(): fixed (the changes of one revision in key order)',
  },
  F16: {
    id: 'F16',
    status: 'fixed',
    title: 'a leader vouched in its watch history for a revision its recovery skipped; a later leader committed a write at it, missing from that history',
    where: 'actors/leader-term.ts vouchesUpTo(): fixed (a history vouches for a revision only once a write at or above it is committed)',
  },
  F17: {
    id: 'F17',
    status: 'fixed',
    title: 'a node restarted while its catch-up history was still to come; its history later went over a revision it never saw',
    where: "actors/replica-store.ts restoreHistory(): fixed (an open transfer is kept with the copy's meta; after a restart the floor rises over the copy)",
  },
  F18: {
    id: 'F18',
    status: 'fixed',
    title: 'a leader that could not commit an expiry (writes refused) tried again at once, for ever: a busy loop and a log line per try',
    where: 'actors/leader-term.ts expiryStalled(): fixed (the next try after EXPIRY_RETRY_MS; each new cause logged once)',
  },
  F19: {
    id: 'F19',
    status: 'fixed',
    title: "an expiry queued behind a key's write started after the leader's term had ended: it replaced that write in flight, and every node's watch history lost it",
    where: 'actors/leader-term.ts replicate() and expireNow(): fixed (no write starts once the term has ended; an expiry checks the session in its turn, as a write does)',
  },
  F20: {
    id: 'F20',
    status: 'fixed',
    title: "a put with a time to live that a new leader recommitted lived a time to live from the recommit, not from the takeover: a read saw it past its time",
    where: "actors/leader-term.ts recover() and expiryChanged(): fixed (a recommit's deadline runs from the takeover; replicas take it as recommitted and leave its reads to the leader)",
  },
  F21: {
    id: 'F21',
    status: 'fixed',
    title: "a leader whose watch history had lost its oldest changes took them back only from complete replicas in its recovery: a member that kept them, syncing later or no longer complete, lost them to the leader's floor when it joined",
    where: 'actors/leader-term.ts syncMessage() and syncLateMember(), actors/replica-endpoint.ts sync(): fixed (every member of the same history sends back the older changes it holds decided, at recovery and when synced late)',
  },
  F22: {
    id: 'F22',
    status: 'fixed',
    title: "a joiner whose watch history's floor had risen took from its leader only the changes above its own stable revision; the older ones the leader held never came back, and that node later led",
    where: 'actors/leader-term.ts admit(), actors/change-log.ts endTransfer(): fixed (the join names the joiner\'s floor; a leader whose history starts lower sends all it has, and the joiner takes the older changes in below)',
  },
  F23: {
    id: 'F23',
    status: 'fixed',
    title: 'a node restarted with a state transfer open raised its history floor over its whole copy, over writes it had seen and recorded after the admission; every node that joined it lost its history (nemesis seed 9404)',
    where: "actors/change-log.ts kept and transferCovers(), actors/replica-store.ts restoreHistory(): fixed (the last chunk says how far the transfer reached; the meta keeps it, and the floor rises only to there)",
  },
  F24: {
    id: 'F24',
    status: 'fixed',
    title: "a leader re-committing writes of the previous term admitted a joiner into the replica set without them; had it died before the re-commit reached the joiner, the joiner could lead without an acknowledged write (and its watch history rose over them: nemesis seed 9601, sim seeds 138 and 90099)",
    where: "actors/leader-term.ts transfer(), actors/replica-endpoint.ts receive(), actors/change-log.ts transferCovers(): fixed (the last chunk carries the writes still to be re-committed, which the joiner holds in flight; its floor stays below them, and over no rolled-back write above the leader's last revision)",
  },
  F25: {
    id: 'F25',
    status: 'fixed',
    title: 'a removal that began above the floor on copies ended below it (another replica left meanwhile): the record kept listing the node, yet it stopped being a write target, so a write in flight was acknowledged without it; it later led with its copy and the write was lost',
    where: 'actors/leader-term.ts remove() and transfer(): fixed (a node the record still lists, a joiner whose transfer failed too, stays a target, and writes in flight wait for it, until a set without it is written)',
  },
  F26: {
    id: 'F26',
    status: 'fixed',
    title: 'a join request of an expired session, delivered late, started a transfer to a serving replica; the transfer failed and the leader dropped the node from its write targets at once, while the node still served reads under the lease granted before',
    where: 'actors/leader-term.ts transfer(): fixed (a joiner whose transfer fails leaves the targets through remove(), which waits out the last lease granted)',
  },
};
