// Walks every entry of a data dir's LMDB environment, in a child process of the node that is
// about to open it (storage/lmdb-disk.ts). LMDB keeps no checksums and a damaged file can crash
// the process that reads it (SIGSEGV, SIGBUS): the node learns of it from this child's end, and
// refuses to start with a message, rather than dying without one. The walk checks every entry's
// checksum and sums up the settled values, which the node then reads from the engine as needed
// (a restart of a large copy loads nothing else): on stdout, as JSON, a CopySummary
// (actors/ports.ts). A damaged entry: its key and what is wrong on stderr, exit code 2.
import { open } from 'lmdb';
import { copyOut, entryDamage, settledEntry } from './entry-layout.mjs';

const root = open({ path: process.argv[2], maxDbs: 4, noSubdir: false, readOnly: true });
// The watch history's records are keyed by revision (a number); copies written before it have none.
for (const [name, keyType] of [['meta', 'string'], ['changes', 'number']]) {
  const db = root.openDB(name, { encoding: 'binary' });
  if (db === undefined) continue; // read-only: a database never written is not there
  for (const { key, value } of db.getRange()) {
    if (typeof key !== keyType || !(value instanceof Uint8Array)) throw new Error(`${name}: an entry that is not a ${keyType} key with bytes`);
  }
}
const copy = root.openDB('meta', { encoding: 'json' })?.get('copy');
const stable = copy?.watchHistory?.stable ?? Number.POSITIVE_INFINITY;
const summary = { count: 0, valueBytes: 0, maxRev: 0, aboveStable: [], others: [] };
const entries = root.openDB('entries', { encoding: 'binary' });
for (const { key, value } of entries?.getRange() ?? []) {
  if (typeof key !== 'string' || !(value instanceof Uint8Array)) throw new Error('entries: an entry that is not a string key with bytes');
  const entry = copyOut(value);
  const damage = entryDamage(key, entry);
  if (damage !== null) {
    process.stderr.write(`key ${JSON.stringify(key)}: ${damage}\n`);
    process.exit(2);
  }
  const settled = settledEntry(entry);
  if (settled === null) {
    summary.others.push(key);
    continue;
  }
  summary.count++;
  summary.valueBytes += settled.valueBytes;
  if (settled.rev > summary.maxRev) summary.maxRev = settled.rev;
  if (settled.rev > stable) summary.aboveStable.push([key, settled.rev]);
}
await root.close();
process.stdout.write(JSON.stringify(summary));
