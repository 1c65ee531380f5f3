// A real OpenID Provider for custody's dashboard sign-in tests: the OpenID-certified
// `oidc-provider` package (pinned in package.json; scripts/test.sh installs it with `npm ci`
// into a cached directory), run with the machine's Node.js.
//
//   node provider.mjs MODULES_DIR HOST CLIENT_ID CLIENT_SECRET REDIRECT_URI
//
// It listens on a free loopback port, serves the issuer http://HOST:PORT, and prints
// `listening http://HOST:PORT` when ready. One confidential client is registered
// (client_secret_basic, the authorization-code flow only, PKCE required). People log in
// through the package's own development interactions: a login form that takes any login
// and password (the login becomes the subject), then a consent form. Each account's ID
// token carries its email (`LOGIN@acme.example`), as many organisations' providers do.

import http from 'node:http';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [modules, host, clientId, clientSecret, redirectUri] = process.argv.slice(2);
if (!redirectUri) {
  console.error('usage: node provider.mjs MODULES_DIR HOST CLIENT_ID CLIENT_SECRET REDIRECT_URI');
  process.exit(2);
}
const entry = path.join(modules, 'node_modules', 'oidc-provider', 'lib', 'index.js');
const { default: Provider } = await import(pathToFileURL(entry).href);

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://${host}:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: [redirectUri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  // PKCE for every client, not only public ones (S256 is the only method offered).
  pkce: { required: () => true },
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@acme.example`, email_verified: true, name: id };
      },
    };
  },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  // Scope-requested claims in the ID token itself, as most organisations' providers do.
  conformIdTokenClaims: false,
  cookies: { keys: ['custody-test-provider-cookie-key'] },
  // ID tokens vouch for a quarter of an hour: custody's session ends with them.
  ttl: { IdToken: 900 },
});
provider.on('server_error', (_ctx, err) => console.error('provider error:', err));

server.on('request', provider.callback());
console.log(`listening ${issuer}`);
// Whoever started it reads that one line: everything the package says after it goes to
// stderr, so that a closed stdout never ends the provider.
process.stdout.on('error', () => {});
console.log = console.info = console.error;
