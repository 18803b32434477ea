import { useEffect, useState } from 'preact/hooks';

/** Client-side routes under /console, on the History API. */
export const base = '/console';

export interface Location {
  path: string;
  search: URLSearchParams;
}

const changed = 'ngw:navigate';

const current = (): Location => {
  const path = location.pathname.replace(/\/+$/, '');
  return { path: path === base ? `${base}/deliveries` : path, search: new URLSearchParams(location.search) };
};

export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (to === location.pathname + location.search) return;
  if (options.replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  window.dispatchEvent(new Event(changed));
}

export function useLocation(): Location {
  const [where, setWhere] = useState(current);
  useEffect(() => {
    // /console shows the deliveries: say so in the address, so that it can be shared and the nav's aria-current agrees.
    if (location.pathname.replace(/\/+$/, '') === base) history.replaceState(null, '', `${base}/deliveries${location.search}`);
    const update = () => setWhere(current());
    window.addEventListener('popstate', update);
    window.addEventListener(changed, update);
    return () => {
      window.removeEventListener('popstate', update);
      window.removeEventListener(changed, update);
    };
  }, []);
  return where;
}

/** A plain click on a console link navigates in the page; modified clicks (new tab…) are left to the browser. */
export function followLink(event: MouseEvent): void {
  const anchor = event.currentTarget as HTMLAnchorElement;
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(anchor.getAttribute('href') ?? base);
}
