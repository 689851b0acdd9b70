// Tables that put ZiStore next to its peers: one column per system and a ratio column per peer
// (ZiStore ÷ peer), plus the durability note every comparison table carries.
import { SHORT_DURABILITY, SYSTEM_NAMES, type SystemId } from './peers/types.ts';
import type { Measurement } from './report.ts';
import type { Column, LiveTable, Row } from './table.ts';

/** Column order of the comparison tables. */
export const COMPARED: readonly SystemId[] = ['etcd', 'zookeeper', 'jetstream', 'leveldb', 'nats-echo'];

/** Value columns: ZiStore, then each compared system with its ratio (ZiStore ÷ system). */
export function comparisonColumns(lead: Column[], kind: 'us' | 'rate', systems: readonly SystemId[] = COMPARED): Column[] {
  return [
    ...lead,
    { key: 'zistore', label: 'ZiStore', kind },
    ...systems.flatMap((s): Column[] => [
      { key: s, label: SYSTEM_NAMES[s], kind },
      { key: `x_${s}`, label: `÷${SYSTEM_NAMES[s]}`, kind: 'ratio' },
    ]),
  ];
}

/** A comparison row: `pick` reads the figure (p50 or ops/s) of each system's measurement. */
export function comparisonRow(
  lead: Row,
  zistore: Measurement | null | undefined,
  others: Partial<Record<SystemId, Measurement | null>>,
  pick: (m: Measurement) => number,
  systems: readonly SystemId[] = COMPARED,
): Row {
  const row: Row = { ...lead, zistore: zistore ? pick(zistore) : null };
  for (const s of systems) {
    const m = others[s];
    row[s] = m ? pick(m) : null;
    row[`x_${s}`] = m && zistore && pick(m) > 0 ? pick(zistore) / pick(m) : null;
  }
  return row;
}

/** The ratio note and one durability line per system in the table. */
export function comparisonNotes(table: LiveTable, systems: Iterable<SystemId>, what: 'latency' | 'throughput' | 'both'): void {
  const ratio =
    what === 'latency' ? '÷peer = ZiStore p50 ÷ peer p50: below 1 = ZiStore faster.'
    : what === 'throughput' ? '÷peer = ZiStore ops/s ÷ peer ops/s: above 1 = ZiStore ahead.'
    : '÷peer = ZiStore ÷ peer: for latency below 1 = ZiStore faster, for ops/s above 1 = ZiStore ahead.';
  table.note(ratio + ' – = not measured (peer skipped).');
  durabilityNote(table, systems);
}

export function durabilityNote(table: LiveTable, systems: Iterable<SystemId>): void {
  const seen = new Set<SystemId>(['zistore', ...systems]);
  table.note(`Durability — ${[...seen].map((s) => `${SYSTEM_NAMES[s]}: ${SHORT_DURABILITY[s]}`).join('; ')}.`);
}
