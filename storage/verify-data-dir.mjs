// Walks every entry of a data dir's LMDB environment, in a child process of the node that is
// about to open it (storage/lmdb-disk.ts). LMDB keeps no checksums and a damaged file can crash
// the process that reads it (SIGSEGV, SIGBUS): the node learns of it from this child's end, and
// refuses to start with a message, rather than dying without one.
import { open } from 'lmdb';

const root = open({ path: process.argv[2], maxDbs: 4, noSubdir: false, readOnly: true });
// The watch history's records are keyed by revision (a number); copies written before it have none.
for (const [name, keyType] of [['entries', 'string'], ['meta', 'string'], ['changes', 'number']]) {
  const db = root.openDB(name, { encoding: 'binary' });
  if (db === undefined) continue; // read-only: a database never written is not there
  for (const { key, value } of db.getRange()) {
    if (typeof key !== keyType || !(value instanceof Uint8Array)) throw new Error(`${name}: an entry that is not a ${keyType} key with bytes`);
  }
}
await root.close();
