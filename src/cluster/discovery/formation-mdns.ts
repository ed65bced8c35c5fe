/**
 * The network side of etcd formation (formation.ts): an etcd member board advertises its claim
 * as `_pikv-etcd._tcp` (FormationAdvertiser, whose TXT record changes when the board moves from
 * `forming` to `running`), and browses for the others' (FormationBrowse), keeping only claims
 * whose proof verifies with the cluster secret. It is a service of its own, not the pikv node's
 * `_pikv._tcp`: pikv on a member board needs etcd first, so boards waiting for each other's
 * pikv would wait for ever.
 */
import { hostname } from 'node:os';
import { openBonjour, type BonjourInstance, type MdnsOptions } from './mdns.js';
import { CLAIMS_MAX, decodeClaimTxt, encodeClaimTxt, FORMATION_SERVICE_TYPE, verifyClaim, type MemberClaim } from './formation.js';

/** How often a running browse asks again (answers can be lost, and boards come up late). */
const REQUERY_MS = 1_000;

type ServiceLike = { name: string; txt?: unknown; referer?: { address: string } };

/** This board's claim on the LAN until stop(); update() changes what it says. */
export class FormationAdvertiser {
  private readonly bonjour: BonjourInstance;
  private readonly service: { txt?: unknown };
  readonly name: string;

  constructor(claim: MemberClaim, private readonly secret: string, options: MdnsOptions) {
    this.name = `pikv-etcd ${claim.cluster} ${claim.name}`.slice(0, 63);
    this.bonjour = openBonjour(options);
    const port = Number(new URL(claim.peer_url).port);
    const host = hostname().endsWith('.local') ? hostname() : `${hostname()}.local`;
    const service = this.bonjour.publish({ name: this.name, type: FORMATION_SERVICE_TYPE, port, host, txt: encodeClaimTxt(claim, secret), probe: true });
    service.on('error', (error: Error) => options.log(`formation: advertising "${this.name}" failed: ${error.message}`));
    this.service = service;
  }

  /**
   * Says something new. bonjour-service builds its answers from `service.txt` at each query,
   * and browsers ask again every second, so the new record reaches them within about a second.
   */
  update(claim: MemberClaim): void {
    this.service.txt = encodeClaimTxt(claim, this.secret);
  }

  stop(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, 1_000);
      this.bonjour.unpublishAll(() => {
        this.bonjour.destroy(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    });
  }
}

/** The verified claims of one cluster, newest per instance name; unverified ones are counted and said once. */
export class FormationBrowse {
  private readonly bonjour: BonjourInstance;
  private readonly found = new Map<string, MemberClaim>();
  private readonly timer: NodeJS.Timeout;
  private readonly rejected = new Set<string>();

  constructor(cluster: string, secret: string, options: MdnsOptions) {
    this.bonjour = openBonjour(options);
    const browser = this.bonjour.find({ type: FORMATION_SERVICE_TYPE });
    const take = (service: ServiceLike): void => {
      const decoded = decodeClaimTxt(service.txt);
      const from = service.referer?.address ?? '?';
      // A bad record never removes a good one under the same name: answers that carry no TXT
      // (bonjour-service then reports an empty one) would make verified boards flicker, and a
      // forged packet must not be able to erase a board's claim.
      const reject = (why: string): void => {
        const key = `${service.name} ${why}`;
        if (this.rejected.has(key) || this.rejected.size >= CLAIMS_MAX) return;
        this.rejected.add(key);
        options.log(`formation: ignored "${service.name}" from ${from}: ${why}`);
      };
      if (decoded === null) return reject('not a well-formed etcd member claim');
      if (decoded.claim.cluster !== cluster) return reject(`cluster "${decoded.claim.cluster}", not "${cluster}"`);
      if (!verifyClaim(decoded.claim, decoded.proof, secret)) return reject('its proof does not verify with the cluster secret');
      if (!this.found.has(service.name) && this.found.size >= CLAIMS_MAX) return;
      this.found.set(service.name, decoded.claim);
    };
    browser.on('up', take);
    browser.on('txt-update', take);
    browser.on('down', (service: { name: string }) => this.found.delete(service.name));
    this.timer = setInterval(() => browser.update(), REQUERY_MS);
    this.timer.unref();
  }

  claims(): MemberClaim[] {
    return [...this.found.values()];
  }

  stop(): Promise<void> {
    clearInterval(this.timer);
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, 1_000);
      this.bonjour.destroy(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
