// A relying party as partners write one: npm jose's createRemoteJWKSet
// caches the broker's JWKS and refetches it on an unknown kid only once its
// cooldown has passed. It fetches a fresh token every 100 ms for a while,
// asks the broker to rotate its JWT key partway, and prints how many tokens
// it verified and rejected, and how many keys signed them.
//
// usage: node verify.mjs BASE_URL COOLDOWN_MS TOTAL_MS ROTATE_AT_MS
import { createRemoteJWKSet, jwtVerify } from 'jose';

const [base, cooldown, total, rotateAt] = [process.argv[2], ...process.argv.slice(3, 6).map(Number)];
const jwks = createRemoteJWKSet(new URL(base + '/.well-known/jwks.json'), { cooldownDuration: cooldown });
const out = { verified: 0, rejected: 0, kids: [], errors: [] };
const kids = new Set();
const start = Date.now();
let rotated = false;
while (Date.now() - start < total) {
  if (!rotated && Date.now() - start >= rotateAt) {
    const r = await fetch(base + '/rotate', { method: 'POST' });
    if (!r.ok) throw new Error('rotate: ' + r.status);
    rotated = true;
  }
  const token = await (await fetch(base + '/token')).text();
  try {
    const { protectedHeader } = await jwtVerify(token, jwks, { issuer: 'https://sieve.test', typ: 'at+jwt' });
    out.verified++;
    kids.add(protectedHeader.kid);
  } catch (e) {
    out.rejected++;
    if (!out.errors.includes(e.code)) out.errors.push(e.code);
  }
  await new Promise((r) => setTimeout(r, 100));
}
out.kids = [...kids];
console.log(JSON.stringify(out));
