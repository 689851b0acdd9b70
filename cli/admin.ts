// Process control over NATS: `zistore up` serves `zistore.<cluster>.admin`, so a shell attached
// with `zistore shell` can kill, cut and restore nodes of that cluster. JSON request-reply.
import type { NatsConnection, Subscription } from 'nats';
import type { LocalCluster } from '../cluster/local-cluster.ts';
import type { ShellControl } from './shell.ts';

type AdminCommand = 'newClient' | 'kill' | 'restart' | 'rmiDown' | 'rmiUp' | 'zkDown' | 'zkUp' | 'view';
interface AdminRequest {
  command: AdminCommand;
  node?: string;
}
type AdminReply = { ok: true; result?: unknown } | { ok: false; error: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** ShellControl on the local cluster object itself. */
export function localControl(cluster: LocalCluster): ShellControl {
  return {
    newClient: () => cluster.addNode(),
    kill: (id) => cluster.kill(id),
    restart: (id) => cluster.restart(id),
    rmiDown: async (id) => cluster.rmiDown(id),
    rmiUp: async (id) => cluster.rmiUp(id),
    zkDown: async (id) => cluster.zkDown(id),
    zkUp: async (id) => cluster.zkUp(id),
    view: async () => cluster.view(),
  };
}

export function serveAdmin(nc: NatsConnection, subject: string, control: ShellControl): Subscription {
  return nc.subscribe(subject, {
    callback: (_err, msg) => {
      const answer = (reply: AdminReply) => msg.respond(encoder.encode(JSON.stringify(reply)));
      let request: AdminRequest;
      try {
        request = JSON.parse(decoder.decode(msg.data)) as AdminRequest;
      } catch {
        answer({ ok: false, error: 'admin request is not JSON' });
        return;
      }
      const node = request.node ?? '';
      const run: Record<AdminCommand, () => Promise<unknown>> = {
        newClient: () => control.newClient(),
        kill: () => control.kill(node),
        restart: () => control.restart(node),
        rmiDown: () => control.rmiDown(node),
        rmiUp: () => control.rmiUp(node),
        zkDown: () => control.zkDown(node),
        zkUp: () => control.zkUp(node),
        view: () => control.view(),
      };
      const action = run[request.command];
      if (!action) {
        answer({ ok: false, error: `unknown admin command ${String(request.command)}` });
        return;
      }
      action().then(
        (result) => answer({ ok: true, result }),
        (err: unknown) => answer({ ok: false, error: err instanceof Error ? err.message : String(err) }),
      );
    },
  });
}

/** ShellControl that asks the `zistore up` serving the admin subject. */
export function remoteControl(nc: NatsConnection, subject: string): ShellControl {
  const ask = async (command: AdminCommand, node?: string): Promise<unknown> => {
    let raw;
    try {
      raw = await nc.request(subject, encoder.encode(JSON.stringify({ command, node })), { timeout: 15_000 });
    } catch (err) {
      throw new Error(`no 'zistore up' answers on ${subject}; process commands need one`, { cause: err });
    }
    const reply = JSON.parse(decoder.decode(raw.data)) as AdminReply;
    if (!reply.ok) throw new Error(reply.error);
    return reply.result;
  };
  return {
    newClient: async () => String(await ask('newClient')),
    kill: async (id) => void (await ask('kill', id)),
    restart: async (id) => void (await ask('restart', id)),
    rmiDown: async (id) => void (await ask('rmiDown', id)),
    rmiUp: async (id) => void (await ask('rmiUp', id)),
    zkDown: async (id) => void (await ask('zkDown', id)),
    zkUp: async (id) => void (await ask('zkUp', id)),
    view: async () => (await ask('view')) as Awaited<ReturnType<ShellControl['view']>>,
  };
}
