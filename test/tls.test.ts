/**
 * TLS (issue #9, peer authentication): a node started with --tls-cert-file and --tls-key-file
 * serves wss:// on its port; clients and peers verify its certificate against a CA they are
 * given (--tls-ca-file, client option `ca`). A client that does not trust the CA, or that
 * speaks plain ws:// to the TLS port, gets nothing. Two etcd-mode nodes with N = 2 replicate to
 * each other over wss://.
 *
 * Certificates are made for the test with openssl (a throw-away CA and a certificate for
 * 127.0.0.1), in a temporary directory removed at the end.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, connectCluster } from '../src/index.js';
import { etcdMissing, startEtcd, type EtcdProcess } from './helpers/etcd.js';
import { startServer, type ServerProcess } from './helpers/server-process.js';
import { viewOf } from './helpers/cluster-view.js';
import { waitFor } from './helpers/etcd-cluster.js';

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { stdio: 'pipe' });
}

function opensslMissing(): string | null {
  try {
    execFileSync('openssl', ['version'], { stdio: 'pipe' });
    return null;
  } catch {
    return 'openssl is not installed';
  }
}

const skip = opensslMissing() ?? false;
const SECRET = 'tls-test-secret';

describe('TLS (wss://)', { skip, timeout: 90_000 }, () => {
  let dir = '';
  let ca = '';
  const servers: ServerProcess[] = [];
  let etcd: EtcdProcess | null = null;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pikv-tls-'));
    const path = (name: string): string => join(dir, name);
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=pikv test CA', '-keyout', path('ca.key'), '-out', path('ca.pem'));
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', path('node.key'), '-out', path('node.csr'));
    writeFileSync(path('ext.cnf'), 'subjectAltName=IP:127.0.0.1\n');
    openssl('x509', '-req', '-in', path('node.csr'), '-CA', path('ca.pem'), '-CAkey', path('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', path('ext.cnf'), '-out', path('node.pem'));
    ca = readFileSync(path('ca.pem'), 'utf8');
  });

  after(async () => {
    for (const server of servers) await server.stop();
    await etcd?.stop();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  const tlsArgs = (): string[] => ['--tls-cert-file', join(dir, 'node.pem'), '--tls-key-file', join(dir, 'node.key')];

  it('serves wss:// to a client that trusts the CA, and nothing to one that does not or that speaks plain ws://', async () => {
    const server = await startServer(tlsArgs());
    servers.push(server);
    assert.match(server.url, /^wss:\/\/127\.0\.0\.1:\d+$/);
    const client = await connect(server.url, { ca });
    try {
      await client.put('k', 'over tls');
      assert.equal(Buffer.from((await client.get('k'))!).toString(), 'over tls');
    } finally {
      await client.close();
    }
    await assert.rejects(connect(server.url, { connect_timeout_ms: 3_000 }), (error: Error & { code?: string }) => error.code === 'CONNECT_FAILED', 'an untrusted certificate must fail');
    await assert.rejects(connect(server.url.replace('wss://', 'ws://'), { connect_timeout_ms: 3_000 }), 'plain ws:// to a TLS port must fail');
  });

  it('refuses to start with a certificate but no key', async () => {
    await assert.rejects(startServer(['--tls-cert-file', join(dir, 'node.pem')]), /tls_cert_file and tls_key_file go together/);
  });

  it('two etcd-mode nodes at N = 2 replicate over wss://, verifying each other against --tls-ca-file', { skip: etcdMissing() ?? false }, async () => {
    etcd = await startEtcd();
    const env = { PIKV_CLUSTER_SECRET: SECRET };
    const node = (id: string): Promise<ServerProcess> => startServer([...tlsArgs(), '--tls-ca-file', join(dir, 'ca.pem'), '--node-id', id, '--etcd', etcd!.client_url,
      '--replicas', '2', '--lease-ttl-ms', '2000', '--controller-tick-ms', '50'], env);
    const a = await node('a');
    servers.push(a);
    const b = await node('b');
    servers.push(b);
    await waitFor(async () => {
      const view = await viewOf(a.url, { ca }).catch(() => null);
      return view !== null && view.nodes.length === 2 && view.next === undefined ? view : null;
    }, 30_000, 100);
    const view = await viewOf(a.url, { ca });
    assert.ok(view.nodes.every((n) => n.url.startsWith('wss://')), JSON.stringify(view));
    const cluster = await connectCluster([a.url], { ca });
    try {
      const ops = Array.from({ length: 500 }, (_, i) => ({ op: 'put' as const, key: `t${i}`, value: `v${i}` }));
      assert.ok((await cluster.batch(ops)).every((r) => r.code === 'OK'));
      const read = await cluster.batch(ops.map((o) => ({ op: 'get' as const, key: o.key })));
      assert.ok(read.every((r, i) => r.code === 'OK' && Buffer.from(r.value!).toString() === `v${i}`));
    } finally {
      await cluster.close();
    }
    // Both copies are real: b, alone, serves every key once a is gone.
    await a.stop();
    const alone = await connectCluster([b.url], { ca, request_timeout_ms: 3_000 });
    try {
      await waitFor(async () => {
        const read = await alone.batch([{ op: 'get', key: 't7' }]).catch(() => null);
        return read?.[0]?.code === 'OK' ? true : null;
      }, 20_000, 100);
    } finally {
      await alone.close();
    }
  });
});
