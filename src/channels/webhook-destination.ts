// Which addresses a signed webhook may reach (SSRF). A caller chooses the URL, so without these rules a token that may
// send webhooks could make the gateway POST to its own loopback services, the private network or a cloud metadata
// endpoint (169.254.169.254). Checked on the addresses the name resolves to, and the socket connects to exactly those
// addresses (the `lookup` below), so a DNS answer that changes between the check and the connect cannot slip through.
import dns from 'node:dns';
import net from 'node:net';

/** Why an address is refused, or undefined when it may be reached. */
export function refusedAddressReason(address: string): string | undefined {
  const family = net.isIP(address);
  if (family === 4) return refusedIpv4(ipv4Bytes(address));
  if (family === 6) return refusedIpv6(address);
  return 'not an IP address';
}

function ipv4Bytes(address: string): number[] {
  return address.split('.').map(Number);
}

function refusedIpv4([a, b, c]: number[]): string | undefined {
  if (a === 127) return 'loopback';
  if (a === 0) return 'unspecified ("this network")';
  if (a === 10 || (a === 172 && b! >= 16 && b! <= 31) || (a === 192 && b === 168)) return 'private';
  if (a === 100 && b! >= 64 && b! <= 127) return 'private (carrier-grade NAT)';
  if (a === 169 && b === 254) return 'link-local (cloud metadata)';
  if (a === 192 && b === 0 && c === 0) return 'reserved (IETF protocol assignments)';
  if (a === 198 && (b === 18 || b === 19)) return 'reserved (benchmarking)';
  if (a! >= 224 && a! <= 239) return 'multicast';
  if (a! >= 240) return 'reserved or broadcast';
  return undefined;
}

/** The eight 16-bit groups of an IPv6 address (`::` expanded, a trailing dotted IPv4 part folded in). */
function ipv6Groups(address: string): number[] {
  let text = address.toLowerCase().replace(/%.*$/, '');
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = ipv4Bytes(dotted[1]!);
    text = `${text.slice(0, dotted.index)}${((a! << 8) | b!).toString(16)}:${((c! << 8) | d!).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const parse = (part: string) => (part ? part.split(':').map((group) => Number.parseInt(group, 16)) : []);
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  return [...left, ...new Array(8 - left.length - right.length).fill(0), ...right];
}

function refusedIpv6(address: string): string | undefined {
  const g = ipv6Groups(address);
  const embeddedV4 = (high: number, low: number) => [high >> 8, high & 0xff, low >> 8, low & 0xff];
  const zeros = (from: number, to: number) => g.slice(from, to).every((group) => group === 0);
  if (zeros(0, 8)) return 'unspecified';
  if (zeros(0, 7) && g[7] === 1) return 'loopback';
  // IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible (::a.b.c.d, deprecated) and NAT64 (64:ff9b::a.b.c.d) addresses
  // reach the IPv4 address inside them: judged by that address.
  if ((zeros(0, 5) && g[5] === 0xffff) || zeros(0, 6) || (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6))) {
    const reason = refusedIpv4(embeddedV4(g[6]!, g[7]!));
    return reason && `${reason} (IPv4 inside IPv6)`;
  }
  if (g[0] === 0x2002) {
    const reason = refusedIpv4(embeddedV4(g[1]!, g[2]!));
    if (reason) return `${reason} (IPv4 inside a 6to4 address)`;
  }
  if ((g[0]! & 0xfe00) === 0xfc00) return 'private (unique local)';
  if ((g[0]! & 0xffc0) === 0xfe80) return 'link-local';
  if ((g[0]! & 0xffc0) === 0xfec0) return 'site-local (deprecated)';
  if ((g[0]! & 0xff00) === 0xff00) return 'multicast';
  if (g[0] === 0x2001 && g[1] === 0xdb8) return 'reserved (documentation)';
  return undefined;
}

/** A URL's host as WEBHOOK_ALLOWED_HOSTS lists it: lower case, no IPv6 brackets, no trailing dot. */
export function hostKey(hostname: string): string {
  return hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
}

export class DestinationRefusedError extends Error {
  readonly code = 'WEBHOOK_DESTINATION_REFUSED';
  constructor(
    readonly host: string,
    readonly address: string,
    readonly reason: string,
  ) {
    super(
      `${host}${address === host ? '' : ` resolves to ${address}, which`} is a ${reason} address: refused to protect ` +
        'the gateway\'s network (list the host in WEBHOOK_ALLOWED_HOSTS to allow it)',
    );
    this.name = 'DestinationRefusedError';
  }
}

export type Resolver = (hostname: string) => Promise<{ address: string; family: number }[]>;

export const systemResolver: Resolver = (hostname) => dns.promises.lookup(hostname, { all: true, verbatim: true });

/** The host policy of one gateway: WEBHOOK_ALLOWED_HOSTS and how names are resolved (tests inject one). */
export class DestinationPolicy {
  private readonly allowed: Set<string>;

  constructor(
    allowedHosts: readonly string[],
    readonly resolve: Resolver = systemResolver,
  ) {
    this.allowed = new Set(allowedHosts.map(hostKey));
  }

  isAllowed(hostname: string): boolean {
    return this.allowed.has(hostKey(hostname));
  }

  /** Throws DestinationRefusedError when a literal address in the URL is refused (no DNS needed). */
  checkLiteral(hostname: string): void {
    const host = hostKey(hostname);
    if (this.allowed.has(host) || net.isIP(host) === 0) return;
    const reason = refusedAddressReason(host);
    if (reason) throw new DestinationRefusedError(host, host, reason);
  }

  /**
   * Resolves the host and refuses it when any of its addresses is refused (a name that answers both a public and a
   * private address is not trusted with either). Resolution errors are thrown as they are.
   */
  async check(hostname: string): Promise<{ address: string; family: number }[]> {
    const host = hostKey(hostname);
    if (net.isIP(host) !== 0) {
      this.checkLiteral(host);
      return [{ address: host, family: net.isIP(host) }];
    }
    const addresses = await this.resolve(host);
    if (this.allowed.has(host)) return addresses;
    for (const { address } of addresses) {
      const reason = refusedAddressReason(address);
      if (reason) throw new DestinationRefusedError(host, address, reason);
    }
    return addresses;
  }

  /**
   * A `lookup` for http.request / net.connect: the socket connects to the addresses that were checked, nothing else.
   * Node skips `lookup` for a literal IP: `checkLiteral` covers those before the request.
   */
  readonly lookup = ((hostname: string, options: dns.LookupOptions, callback: (...args: unknown[]) => void) => {
    this.check(hostname).then(
      (addresses) => {
        const wanted = options.family === 4 || options.family === 6 ? addresses.filter((a) => a.family === options.family) : addresses;
        if (wanted.length === 0) {
          const error = Object.assign(new Error(`${hostname} has no address of the family asked for`), { code: 'ENOTFOUND' });
          callback(error);
        } else if (options.all) callback(null, wanted);
        else callback(null, wanted[0]!.address, wanted[0]!.family);
      },
      (error: unknown) => callback(error),
    );
  }) as unknown as typeof dns.lookup;
}
