// `zistore shell`: attach to a running cluster over NATS.
import { connect } from 'nats';
import { ZiClient } from '../client/index.ts';
import { subjects } from '../bus/subjects.ts';
import { remoteControl } from './admin.ts';
import { interactiveShell, Shell } from './shell.ts';

export async function runShellCommand(values: Record<string, string | undefined>): Promise<number> {
  const url = values.nats ?? process.env.ZISTORE_NATS ?? 'nats://127.0.0.1:4222';
  const cluster = values.cluster ?? 'default';
  const nc = await connect({ servers: url, name: 'zistore-shell', maxReconnectAttempts: -1 });
  const shell = new Shell(new ZiClient(nc, { cluster }), remoteControl(nc, subjects.admin(cluster)), (t) => process.stdout.write(`${t}\n`));
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
