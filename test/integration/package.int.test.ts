// Goal: the package installs and works as a user gets it: `npm pack`, installed into a fresh
// project with no access to the source tree, imports from plain node (ESM) and talks to a running
// cluster (put, get, a 409, a 404); a TypeScript consumer type-checks against the shipped
// declarations (and a wrong type is caught); `npx zistore --help` runs.
// Method: the real tarball, `npm install` of it (dependencies from the npm cache or registry), a
// real cluster (LocalCluster), the project's own tsc on the consumer.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { LocalCluster } from '../../cluster/local-cluster.ts';
import { makeTempDir, removeTempDir } from '../../cluster/temp-dir.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const TSC = join(ROOT, 'node_modules', '.bin', 'tsc');
const run = promisify(execFile);
let dir = '';
let project = '';
let tarball = '';
let cluster: LocalCluster | null = null;

beforeAll(async () => {
  dir = await makeTempDir('package');
  await run('npm', ['pack', '--pack-destination', dir, '--loglevel=error'], { cwd: ROOT, timeout: 120_000 });
  tarball = join(dir, readdirSync(dir).find((f) => f.endsWith('.tgz'))!);
  project = join(dir, 'consumer');
  await run('mkdir', ['-p', project]);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  await run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: project, timeout: 300_000 });
  cluster = await LocalCluster.start({ nodes: 3, cluster: 'packaged', faults: 'none' });
  await cluster.waitServing(60_000);
}, 420_000);

afterAll(async () => {
  await cluster?.stop();
  if (dir !== '') await removeTempDir(dir);
});

describe('the installed package', () => {
  it('plain node imports the client and uses the contract: put, get, 409, 404', async () => {
    writeFileSync(
      join(project, 't.mjs'),
      `import { connect, ZiStoreError } from 'zistore';
const c = await connect({ servers: process.argv[2], cluster: 'packaged' });
const out = {};
out.put = await c.put('pkg', 'v1');
out.get = (await c.get('pkg')).text();
try { await c.put('pkg', 'v2', { ifRevision: out.put.revision + 100 }); } catch (err) { out.conflict = err instanceof ZiStoreError ? err.code : String(err); }
out.missing = await c.get('never-written');
try { await c.delete('never-written'); } catch (err) { out.deleteMissing = err instanceof ZiStoreError ? err.code : String(err); }
console.log(JSON.stringify(out));
await c.close();
`,
    );
    const { stdout } = await run(process.execPath, ['t.mjs', cluster!.natsUrl], { cwd: project, timeout: 30_000 });
    const out = JSON.parse(stdout) as Record<string, unknown>;
    expect(out.put).toMatchObject({ revision: expect.any(Number) });
    expect(out.get).toBe('v1');
    expect(out.conflict).toBe(409);
    expect(out.missing).toBeNull();
    expect(out.deleteMissing).toBe(404);
  });

  it('a TypeScript consumer type-checks against the shipped declarations, and a wrong type is caught', async () => {
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, types: [] }, files: ['consumer.ts'] }),
    );
    const consumer = `import { connect, ZiStoreError, ZiTimeoutError, type MembersView, type GetResult } from 'zistore';
const c = await connect({ servers: 'nats://127.0.0.1:4222', cluster: 'x', timeoutMs: 2000, retries503: 3 });
const members: MembersView = await c.members();
const got: GetResult | null = await c.get('k');
const revision: number = (await c.put('k', new Uint8Array([1]), { ifRevision: 0 })).revision;
const errors: string[] = [ZiStoreError.name, ZiTimeoutError.name];
console.log(members.leader, got?.text(), revision, errors);
`;
    writeFileSync(join(project, 'consumer.ts'), consumer);
    await run(TSC, ['-p', project], { cwd: project, timeout: 120_000 });
    writeFileSync(join(project, 'consumer.ts'), `${consumer}const wrong: number = members.leader;\n`);
    const failed = await run(TSC, ['-p', project], { cwd: project, timeout: 120_000 }).then(
      () => null,
      (err: { stdout: string }) => err.stdout,
    );
    expect(failed).toMatch(/consumer\.ts.*error TS2322/);
  });

  it('npx zistore --help runs the installed command', async () => {
    const { stdout } = await run('npx', ['zistore', '--help'], { cwd: project, timeout: 60_000 });
    expect(stdout).toContain('zistore node --id ID --cluster NAME');
  });
});
