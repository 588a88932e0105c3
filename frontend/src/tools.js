// The other UIs the web server serves behind the same sign-in (Grafana, Prometheus,
// AlertManager), and the return path a sign-in honours. The roles mirror the API's permission
// matrix (ViewDashboards, ViewOperations); the web server asks the API on every request
// anyway, so a link shown by mistake would only lead to a refusal.

const DASHBOARD_ROLES = ['admin', 'researcher', 'analyst'];
const OPERATIONS_ROLES = ['admin'];

/** The links of the header for a signed-in user of `role`: `{label, href}` each. */
export function toolLinks(role) {
  const links = [];
  if (DASHBOARD_ROLES.includes(role)) links.push({ label: 'Grafana', href: '/grafana/' });
  if (OPERATIONS_ROLES.includes(role)) {
    links.push({ label: 'Prometheus', href: '/prometheus/' });
    links.push({ label: 'AlertManager', href: '/alertmanager/' });
  }
  return links;
}

/**
 * The `next` return path of a query string (`?next=…`) when it stays on this origin: a path starting
 * with one `/` (not `//host` or `/\host`, which browsers read as another host), without a
 * scheme; null otherwise, so a crafted link cannot send a freshly signed-in user elsewhere.
 */
export function safeNext(search, origin) {
  // The web server appends the refused request's URI verbatim, its own query string included,
  // as the only parameter; a link built elsewhere may have it encoded.
  let next = search.startsWith('?next=') ? search.slice('?next='.length) : null;
  if (next && !next.startsWith('/')) {
    try {
      next = decodeURIComponent(next);
    } catch {
      return null;
    }
  }
  if (!next || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return null;
  let url;
  try {
    url = new URL(next, origin);
  } catch {
    return null;
  }
  // `/..//host` resolves to the path `//host`, which a browser would read as another host.
  if (url.origin !== new URL(origin).origin || url.pathname.startsWith('//')) return null;
  return url.pathname + url.search + url.hash;
}
