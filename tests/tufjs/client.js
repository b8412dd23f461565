#!/usr/bin/env node
// tuf-js client for tufrepo's tests: trust ROOT, refresh from URL/metadata/ (walking every
// root version), download each TARGET from URL/targets/ into OUT, print a JSON summary.
// usage: node client.js --url URL --root FILE --cache DIR --out DIR [TARGET...]
// Exit 0 on success; 1 with the error on stderr when tuf-js refuses the site.
'use strict';

const fs = require('fs');
const path = require('path');
const { Updater } = require('tuf-js');

function parseArgs(argv) {
  const opts = { targets: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (['--url', '--root', '--cache', '--out'].includes(arg)) {
      opts[arg.slice(2)] = argv[++i];
    } else {
      opts.targets.push(arg);
    }
  }
  for (const required of ['url', 'root', 'cache', 'out']) {
    if (!opts[required]) {
      throw new Error(`missing --${required}`);
    }
  }
  return opts;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  fs.mkdirSync(opts.cache, { recursive: true });
  fs.mkdirSync(opts.out, { recursive: true });
  // the trust anchor: only on first use, later runs keep what tuf-js persisted
  const cachedRoot = path.join(opts.cache, 'root.json');
  if (!fs.existsSync(cachedRoot)) {
    fs.copyFileSync(opts.root, cachedRoot);
  }
  const base = opts.url.replace(/\/+$/, '');
  const updater = new Updater({
    metadataDir: opts.cache,
    metadataBaseUrl: `${base}/metadata`,
    targetDir: opts.out,
    targetBaseUrl: `${base}/targets`,
    config: { fetchTimeout: 10000, fetchRetries: 0 },
  });
  await updater.refresh();
  const downloaded = {};
  for (const target of opts.targets) {
    const info = await updater.getTargetInfo(target);
    if (!info) {
      throw new Error(`target ${target} not found`);
    }
    const file = await updater.downloadTarget(info, path.join(opts.out, path.basename(target)));
    downloaded[target] = file;
  }
  const root = JSON.parse(fs.readFileSync(cachedRoot, 'utf8'));
  const timestamp = JSON.parse(fs.readFileSync(path.join(opts.cache, 'timestamp.json'), 'utf8'));
  process.stdout.write(
    JSON.stringify({
      root_version: root.signed.version,
      timestamp_version: timestamp.signed.version,
      downloaded,
    }) + '\n',
  );
}

main().catch((err) => {
  process.stderr.write(`tuf-js: ${err && err.message ? err.message : err}\n`);
  process.exit(1);
});
