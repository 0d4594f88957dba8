// Parsers of the address settings: `host:port` listeners and the MySQL DSN in its URL and Go forms.

export interface HostPort {
  host: string;
  port: number;
}

export interface DatabaseConfig {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
  /**
   * true (default): create the database and apply the migrations at startup. false (DATABASE_MIGRATE=off, for a
   * user without DDL rights): apply no DDL, only check that the table and columns the daemon needs exist.
   */
  migrate?: boolean;
}

/** `host:port`, `:port` (all interfaces → defaultHost) or `[v6]:port`. */
export function parseHostPort(text: string, defaultHost: string): HostPort {
  const t = text.trim();
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(t);
  if (m === null) throw new Error(`expected host:port, got ${JSON.stringify(t)}`);
  const port = Number(m[3]);
  if (port > 65_535) throw new Error(`port out of range in ${JSON.stringify(t)}`);
  const host = m[1] ?? (m[2] === '' || m[2] === undefined ? defaultHost : m[2]);
  return { host, port };
}

/** `mysql://user:pass@host:port/db` or Go's `user:pass@tcp(host:port)/db?params`. */
export function parseDatabaseDsn(dsn: string): DatabaseConfig {
  const t = dsn.trim();
  if (/^mysql:\/\//i.test(t) || /^mariadb:\/\//i.test(t)) {
    let u: URL;
    try {
      u = new URL(t);
    } catch {
      throw new Error('not a valid mysql:// URL');
    }
    const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
    if (database === '') throw new Error('the DSN names no database (…/pipecat)');
    return {
      host: u.hostname.replace(/^\[|\]$/g, '') || '127.0.0.1',
      port: u.port === '' ? 3306 : Number(u.port),
      user: decodeURIComponent(u.username) || 'root',
      password: decodeURIComponent(u.password),
      database,
    };
  }
  const m = /^(?:([^:@]*)(?::(.*))?@)?tcp\(([^)]*)\)\/([^?]+)(?:\?.*)?$/.exec(t);
  if (m === null) throw new Error('expected mysql://user:pass@host:port/db or user:pass@tcp(host:port)/db');
  const hp = parseHostPort((m[3] ?? '').includes(':') ? (m[3] ?? '') : `${m[3] ?? ''}:3306`, '127.0.0.1');
  return { host: hp.host, port: hp.port, user: m[1] || 'root', password: m[2] ?? '', database: m[4] ?? '' };
}
