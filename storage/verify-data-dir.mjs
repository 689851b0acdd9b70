// Walks every entry of a data dir's LMDB environment, in a child process of the node that is
// about to open it (storage/lmdb-disk.ts). LMDB keeps no checksums and a damaged file can crash
// the process that reads it (SIGSEGV, SIGBUS): the node learns of it from this child's end, and
// refuses to start with a message, rather than dying without one.
import { open } from 'lmdb';

const root = open({ path: process.argv[2], maxDbs: 4, noSubdir: false, readOnly: true });
for (const name of ['entries', 'meta']) {
  for (const { key, value } of root.openDB(name, { encoding: 'binary' }).getRange()) {
    if (typeof key !== 'string' || !(value instanceof Uint8Array)) throw new Error(`${name}: an entry that is not a string key with bytes`);
  }
}
await root.close();
