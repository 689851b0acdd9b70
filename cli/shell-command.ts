// `zistore shell`: attach to a running cluster over NATS.
import { connect } from '../client/index.ts';
import { UsageError } from './args.ts';
import { subjects } from '../bus/subjects.ts';
import { remoteControl } from './admin.ts';
import { interactiveShell, Shell } from './shell.ts';

export interface ShellFlags {
  nats?: string[];
  cluster?: string;
  creds?: string;
  user?: string;
  password?: string;
}

export async function runShellCommand(values: ShellFlags): Promise<number> {
  // Several --nats (or one comma-separated list): nats.js fails over between them.
  const servers = (values.nats ?? [process.env.ZISTORE_NATS ?? 'nats://127.0.0.1:4222']).flatMap((u) => u.split(',')).filter((u) => u !== '');
  const url = servers.join(',');
  const cluster = values.cluster ?? 'default';
  if ((values.user === undefined) !== (values.password === undefined)) throw new UsageError('--user and --password go together');
  const own = values.user !== undefined ? { user: values.user, pass: values.password } : {};
  // Without credentials of its own, the client finds those of `zistore up --secure` (or --creds).
  const client = await connect({ servers, cluster, name: 'zistore-shell', creds: values.creds, ...own });
  const nc = client.nc;
  const shell = new Shell(client, remoteControl(nc, subjects.admin(cluster)), (t) => process.stdout.write(`${t}\n`));
  if (process.stdin.isTTY) {
    await interactiveShell(shell, `attached to cluster '${cluster}' at ${url}`);
  } else {
    // Scripted use: one command per line on stdin.
    const { createInterface } = await import('node:readline');
    for await (const line of createInterface({ input: process.stdin })) if (!(await shell.run(line))) break;
  }
  await nc.close();
  return 0;
}
