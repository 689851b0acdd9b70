// Goal: a node's log lines carry each binding once, however many layers (the CLI, the node, the
// coordinator) name the node and the cluster. Method: a real pino logger writing to a string.
import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { childLog } from '../../actors/ports.ts';

function capture(): { log: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const out = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { log: pino({ base: null }, out), lines };
}

const count = (line: string, key: string) => line.split(`"${key}":`).length - 1;

describe('child log', () => {
  it('child log - bindings the logger has already are not written twice; new ones are added', async () => {
    const { log, lines } = capture();
    const cli = log.child({ node: 'n1', cluster: 'c1' });
    childLog(childLog(cli, { node: 'n1' }), { node: 'n1', cluster: 'c1', actor: 'epoch' }).info({ epoch: 3 }, 'claimed');
    childLog(log, { node: 'n2' }).info({}, 'bare');
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines).toHaveLength(2);
    expect(count(lines[0]!, 'node')).toBe(1);
    expect(count(lines[0]!, 'cluster')).toBe(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ node: 'n1', cluster: 'c1', actor: 'epoch', epoch: 3, msg: 'claimed' });
    expect(JSON.parse(lines[1]!)).toMatchObject({ node: 'n2', msg: 'bare' });
  });
});
