// Throw-away TLS material for tests, made with the openssl command line (EC prime256v1, valid one
// day): a CA, a server certificate for 127.0.0.1 and localhost signed by it, and client
// certificates. Everything lives in one `zistore-tls-*` temp dir; remove() deletes it.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { findExecutable } from '../../cluster/child-process.ts';
import { makeTempDir, removeTempDir } from '../../cluster/temp-dir.ts';

const run = promisify(execFile);

export interface CertificateAuthority {
  /** PEM certificate (self-signed). */
  cert: string;
  /** PEM private key. */
  key: string;
}

export interface IssuedCert {
  /** PEM certificate, signed by the CA it was issued from. */
  cert: string;
  /** PEM private key. */
  key: string;
}

export interface TlsCerts {
  dir: string;
  /** The CA the servers and clients trust. */
  ca: CertificateAuthority;
  /** For nats-server: SAN IP:127.0.0.1 and DNS:localhost, serverAuth. */
  server: IssuedCert;
  /** A client certificate (clientAuth) from `ca`: for mutual TLS. */
  client: IssuedCert;
  /** Another CA, trusted by nobody, and a client certificate from it. */
  rogueCa: CertificateAuthority;
  rogueClient: IssuedCert;
  /** Delete the directory and everything in it. */
  remove(): Promise<void>;
}

let openssl: string | undefined;

async function ssl(dir: string, args: string[]): Promise<void> {
  openssl ??= findExecutable('openssl', ['/usr/bin/openssl']);
  if (openssl === undefined) throw new Error('openssl not found (not on PATH nor /usr/bin/openssl)');
  try {
    await run(openssl, args, { cwd: dir, timeout: 20_000 });
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`openssl ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`);
  }
}

async function ecKey(dir: string, name: string): Promise<string> {
  const key = join(dir, `${name}.key`);
  await ssl(dir, ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', key]);
  return key;
}

/** A self-signed CA in `dir`: `<name>.pem` and `<name>.key`. */
export async function makeCa(dir: string, name: string, commonName = `ZiStore test CA ${name}`): Promise<CertificateAuthority> {
  const key = await ecKey(dir, name);
  const cert = join(dir, `${name}.pem`);
  await ssl(dir, [
    'req', '-x509', '-new', '-key', key, '-sha256', '-days', '1',
    '-subj', `/CN=${commonName}`,
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-addext', 'subjectKeyIdentifier=hash',
    '-out', cert,
  ]);
  return { cert, key };
}

export interface IssueOptions {
  commonName?: string;
  /** subjectAltName entries, e.g. ['IP:127.0.0.1', 'DNS:localhost']. */
  altNames?: string[];
  /** Extended key usage; default ['serverAuth'] with altNames, else ['clientAuth']. */
  usage?: Array<'serverAuth' | 'clientAuth'>;
}

/** A key and a certificate signed by `ca`, in `dir`: `<name>.pem` and `<name>.key`. */
export async function issueCert(dir: string, ca: CertificateAuthority, name: string, o: IssueOptions = {}): Promise<IssuedCert> {
  const key = await ecKey(dir, name);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  const cert = join(dir, `${name}.pem`);
  const usage = o.usage ?? (o.altNames ? ['serverAuth'] : ['clientAuth']);
  await ssl(dir, ['req', '-new', '-key', key, '-subj', `/CN=${o.commonName ?? name}`, '-out', csr]);
  const extensions = [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature',
    `extendedKeyUsage=${usage.join(',')}`,
    'authorityKeyIdentifier=keyid',
    ...(o.altNames?.length ? [`subjectAltName=${o.altNames.join(',')}`] : []),
  ];
  await writeFile(ext, extensions.join('\n') + '\n');
  await ssl(dir, [
    'x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key,
    '-set_serial', `0x${randomBytes(8).toString('hex')}`,
    '-days', '1', '-sha256', '-extfile', ext, '-out', cert,
  ]);
  return { cert, key };
}

/** A CA, a server certificate for 127.0.0.1/localhost, a client certificate, and a rogue CA with its own client. */
export async function makeTlsCerts(label = 'tls'): Promise<TlsCerts> {
  const dir = await makeTempDir(label);
  try {
    const [ca, rogueCa] = await Promise.all([makeCa(dir, 'ca'), makeCa(dir, 'rogue-ca')]);
    const [server, client, rogueClient] = await Promise.all([
      issueCert(dir, ca, 'server', { commonName: 'localhost', altNames: ['IP:127.0.0.1', 'DNS:localhost'] }),
      issueCert(dir, ca, 'client', { commonName: 'zistore-test-client' }),
      issueCert(dir, rogueCa, 'rogue-client', { commonName: 'zistore-rogue-client' }),
    ]);
    return { dir, ca, server, client, rogueCa, rogueClient, remove: () => removeTempDir(dir) };
  } catch (err) {
    await removeTempDir(dir).catch(() => undefined);
    throw err;
  }
}

/** nats-server's `tls { }` block for these files; `verify` demands a client certificate from `ca`. */
export function natsTlsBlock(certs: Pick<TlsCerts, 'ca' | 'server'>, o: { verify?: boolean; timeoutSec?: number } = {}): string {
  const q = (s: string) => JSON.stringify(s);
  return [
    'tls {',
    `  cert_file: ${q(certs.server.cert)}`,
    `  key_file: ${q(certs.server.key)}`,
    `  ca_file: ${q(certs.ca.cert)}`,
    ...(o.verify ? ['  verify: true'] : []),
    `  timeout: ${o.timeoutSec ?? 2}`,
    '}',
  ].join('\n');
}
