/** The OPS-Token lives only in this tab's sessionStorage: never in a URL, a cookie or localStorage. */
const key = 'ngw.opsToken';

export function readToken(): string | null {
  try {
    return sessionStorage.getItem(key);
  } catch {
    return null;
  }
}

export function saveToken(token: string): void {
  sessionStorage.setItem(key, token);
}

export function clearToken(): void {
  try {
    sessionStorage.removeItem(key);
  } catch {
    // Nothing stored.
  }
}
