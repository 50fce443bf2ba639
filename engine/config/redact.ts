/**
 * Secrets out of messages: URLs are printed with their password (or token) replaced, so an error
 * that names the server it could not reach never carries the credentials of the URL.
 */

/** Replaces the password of `scheme://user:pass@host` (or a bare `scheme://token@host`) with `***`. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^@/?#]*)@/i, (_m, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    // nats://token@host: the user part alone is the secret
    if (colon < 0) return `${scheme}***@`;
    return `${scheme}${userinfo.slice(0, colon)}:***@`;
  });
}

/** {@link redactUrl} of each comma-separated URL (NATS server lists). */
export function redactUrls(urls: string): string {
  return urls
    .split(',')
    .map((u) => redactUrl(u.trim()))
    .join(',');
}

/** Removes every occurrence of the secrets from `text` (error messages of libraries that quote their input). */
export function withoutSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s.length >= 3) out = out.split(s).join('***');
  return out;
}

/** The passwords (or bare tokens) written in URLs, comma separated ones included. */
export function urlSecrets(urls: string): string[] {
  const out: string[] = [];
  for (const url of urls.split(',')) {
    const userinfo = /^[a-z][a-z0-9+.-]*:\/\/([^@/?#]*)@/i.exec(url.trim())?.[1];
    if (userinfo === undefined) continue;
    const colon = userinfo.indexOf(':');
    const secret = colon < 0 ? userinfo : userinfo.slice(colon + 1);
    out.push(secret);
    const decoded = safeDecode(secret);
    if (decoded !== secret) out.push(decoded);
  }
  return out.filter(Boolean);
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
