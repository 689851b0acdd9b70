// YCSB core workloads, written after YCSB's own definitions (CoreWorkload and its generators):
//  - key names: "user" + FNV-1a-64 hash of the record number (orderedinserts=false, zeropadding 1),
//    16–23 bytes;
//  - request distributions: scrambled zipfian (zipfian constant 0.99 over YCSB's item count
//    10^10 with its precomputed zeta 26.46902820178302, hashed onto the records), skewed latest
//    (zipfian back from the newest acknowledged insert), uniform;
//  - workloads A–F with YCSB's operation mixes; E's scans start at a key from the request
//    distribution and read 1–100 records (uniform, YCSB's maxscanlength 100);
//  - records of 1000 bytes (YCSB's default 10 fields × 100 bytes, stored as one value); an update
//    writes the whole record, a read-modify-write reads it and writes it back.
import type { Operation } from './load.ts';
import type { KvSession } from './peers/types.ts';

const FNV_OFFSET_BASIS_64 = BigInt.asIntN(64, 0xcbf29ce484222325n);
const FNV_PRIME_64 = 1099511628211n;

/** YCSB's Utils.fnvhash64 (Java long arithmetic, then Math.abs). */
export function fnvhash64(value: number | bigint): bigint {
  let val = BigInt.asIntN(64, BigInt(value));
  let hash = FNV_OFFSET_BASIS_64;
  for (let i = 0; i < 8; i++) {
    const octet = val & 0xffn;
    val >>= 8n;
    hash ^= octet;
    hash = BigInt.asIntN(64, hash * FNV_PRIME_64);
  }
  return hash < 0n ? BigInt.asIntN(64, -hash) : hash;
}

/** CoreWorkload.buildKeyName with orderedinserts=false and zeropadding=1. */
export function keyName(keynum: number): string {
  return `user${fnvhash64(keynum)}`;
}

const ZIPFIAN_CONSTANT = 0.99;
/** ScrambledZipfianGenerator's item count and its precomputed zeta for 0.99. */
const SCRAMBLED_ITEM_COUNT = 10_000_000_000;
const SCRAMBLED_ZETAN = 26.46902820178302;

/** Σ_{i=st}^{n-1} 1/(i+1)^θ added to initialsum (ZipfianGenerator.zetastatic). */
function zeta(st: number, n: number, theta: number, initialsum: number): number {
  let sum = initialsum;
  for (let i = st; i < n; i++) sum += 1 / Math.pow(i + 1, theta);
  return sum;
}

/** YCSB's ZipfianGenerator: popular items are the small numbers. */
export class ZipfianGenerator {
  private readonly items: number;
  private readonly base: number;
  private readonly theta: number;
  private readonly zeta2theta: number;
  private readonly alpha: number;
  private zetan: number;
  private eta: number;
  private countforzeta: number;

  constructor(min: number, max: number, theta = ZIPFIAN_CONSTANT, zetan?: number) {
    this.items = max - min + 1;
    this.base = min;
    this.theta = theta;
    this.zeta2theta = zeta(0, 2, theta, 0);
    this.alpha = 1 / (1 - theta);
    this.zetan = zetan ?? zeta(0, this.items, theta, 0);
    this.countforzeta = this.items;
    this.eta = (1 - Math.pow(2 / this.items, 1 - theta)) / (1 - this.zeta2theta / this.zetan);
  }

  /** nextLong(itemcount): a value in [base, base + itemcount). */
  next(itemcount = this.items, random = Math.random()): number {
    if (itemcount > this.countforzeta) {
      // YCSB grows zeta incrementally when the item count grows (it keeps eta's `items` term).
      this.zetan = zeta(this.countforzeta, itemcount, this.theta, this.zetan);
      this.eta = (1 - Math.pow(2 / this.items, 1 - this.theta)) / (1 - this.zeta2theta / this.zetan);
      this.countforzeta = itemcount;
    }
    const uz = random * this.zetan;
    if (uz < 1) return this.base;
    if (uz < 1 + Math.pow(0.5, this.theta)) return this.base + 1;
    return this.base + Math.floor(itemcount * Math.pow(this.eta * random - this.eta + 1, this.alpha));
  }
}

/** YCSB's ScrambledZipfianGenerator: zipfian popularity, spread over [min, max] by hashing. */
export class ScrambledZipfianGenerator {
  private readonly gen = new ZipfianGenerator(0, SCRAMBLED_ITEM_COUNT, ZIPFIAN_CONSTANT, SCRAMBLED_ZETAN);
  private readonly itemcount: bigint;

  constructor(
    private readonly min: number,
    max: number,
  ) {
    this.itemcount = BigInt(max - min + 1);
  }

  next(): number {
    return this.min + Number(fnvhash64(this.gen.next()) % this.itemcount);
  }
}

/** YCSB's UniformLongGenerator over [min, max]. */
export class UniformGenerator {
  constructor(
    private readonly min: number,
    private readonly max: number,
  ) {}

  next(): number {
    return this.min + Math.floor(Math.random() * (this.max - this.min + 1));
  }
}

/**
 * The insert sequence with YCSB's AcknowledgedCounterGenerator semantics: `next()` hands out
 * record numbers; `lastValue()` is the highest number below which every insert is acknowledged.
 */
export class InsertSequence {
  private counter: number;
  private limit: number;
  private readonly acked = new Set<number>();

  constructor(recordcount: number) {
    this.counter = recordcount;
    this.limit = recordcount - 1;
  }

  next(): number {
    return this.counter++;
  }

  acknowledge(n: number): void {
    this.acked.add(n);
    while (this.acked.delete(this.limit + 1)) this.limit++;
  }

  lastValue(): number {
    return this.limit;
  }
}

/** YCSB's SkewedLatestGenerator: the newest records are the most popular. */
export class SkewedLatestGenerator {
  private readonly zipfian: ZipfianGenerator;

  constructor(private readonly basis: InsertSequence) {
    this.zipfian = new ZipfianGenerator(0, Math.max(1, basis.lastValue()) - 1);
  }

  next(): number {
    const max = this.basis.lastValue();
    return max - this.zipfian.next(Math.max(1, max));
  }
}

export type Distribution = 'zipfian' | 'latest' | 'uniform';

export interface Workload {
  id: 'a' | 'b' | 'c' | 'd' | 'e' | 'f';
  title: string;
  read: number;
  update: number;
  insert: number;
  scan: number;
  readModifyWrite: number;
  distribution: Distribution;
}

export const WORKLOADS: Workload[] = [
  { id: 'a', title: 'A: update heavy (50% read, 50% update, zipfian)', read: 0.5, update: 0.5, insert: 0, scan: 0, readModifyWrite: 0, distribution: 'zipfian' },
  { id: 'b', title: 'B: read mostly (95% read, 5% update, zipfian)', read: 0.95, update: 0.05, insert: 0, scan: 0, readModifyWrite: 0, distribution: 'zipfian' },
  { id: 'c', title: 'C: read only (100% read, zipfian)', read: 1, update: 0, insert: 0, scan: 0, readModifyWrite: 0, distribution: 'zipfian' },
  { id: 'd', title: 'D: read latest (95% read, 5% insert, latest)', read: 0.95, update: 0, insert: 0.05, scan: 0, readModifyWrite: 0, distribution: 'latest' },
  { id: 'e', title: 'E: short ranges (95% scan of 1–100 records, 5% insert, zipfian)', read: 0, update: 0, insert: 0.05, scan: 0.95, readModifyWrite: 0, distribution: 'zipfian' },
  { id: 'f', title: 'F: read-modify-write (50% read, 50% RMW, zipfian)', read: 0.5, update: 0, insert: 0, scan: 0, readModifyWrite: 0.5, distribution: 'zipfian' },
];

/** Per system: the records it holds and its insert sequence (inserts of D accumulate across runs). */
export class YcsbState {
  readonly inserts: InsertSequence;

  constructor(readonly recordcount: number) {
    this.inserts = new InsertSequence(recordcount);
  }

  /** A key chooser of YCSB's CoreWorkload for the workload's request distribution. */
  chooser(distribution: Distribution): () => number {
    const last = () => this.inserts.lastValue();
    if (distribution === 'latest') {
      const g = new SkewedLatestGenerator(this.inserts);
      return () => g.next();
    }
    // CoreWorkload: choose over the loaded records (+ expected inserts, 0 for A–C, F) and skip
    // numbers not inserted yet.
    const g = distribution === 'uniform' ? new UniformGenerator(0, this.recordcount - 1) : new ScrambledZipfianGenerator(0, this.recordcount);
    return () => {
      for (;;) {
        const n = g.next();
        if (n <= last()) return n;
      }
    };
  }
}

const MAX_SCAN_LENGTH = 100;

const MISSING = () => Object.assign(new Error('YCSB read of a record that should exist returned nothing'), { code: 'MISSING' });

/** One worker's operation: draws the next operation of the mix and runs it on `session`. */
export function workloadOperation(workload: Workload, state: YcsbState, session: KvSession, value: Uint8Array, distribution = workload.distribution): Operation {
  const choose = state.chooser(distribution);
  const readEnd = workload.read;
  const updateEnd = readEnd + workload.update;
  const insertEnd = updateEnd + workload.insert;
  const scanEnd = insertEnd + workload.scan;
  return async () => {
    const r = Math.random();
    if (r < readEnd) {
      if ((await session.get(keyName(choose()))) === null) throw MISSING();
    } else if (r < updateEnd) {
      await session.put(keyName(choose()), value);
    } else if (r < insertEnd) {
      const n = state.inserts.next();
      await session.put(keyName(n), value);
      state.inserts.acknowledge(n);
    } else if (r < scanEnd) {
      // CoreWorkload: a start key from the request distribution, a length uniform in 1 … maxscanlength (100).
      const length = 1 + Math.floor(Math.random() * MAX_SCAN_LENGTH);
      if ((await session.scan(keyName(choose()), length)) === 0) throw MISSING();
    } else {
      const key = keyName(choose());
      if ((await session.get(key)) === null) throw MISSING();
      await session.put(key, value);
    }
  };
}
