// The Eclipse Theia Open VSX client, unchanged, against a registry URL: prints its search and
// query answers as JSON for tests/openvsx/test_clients.py. Usage: node theia-client.js URL QUERY ID
'use strict';
const { OVSXHttpClient } = require('@theia/ovsx-client');

const [registryUrl, text, extensionId] = process.argv.slice(2);
// Theia's request service as its Node back end provides it, reduced to what the client calls.
const requestService = {
    async request({ url, headers }) {
        const response = await fetch(url, { headers });
        const buffer = Buffer.from(await response.arrayBuffer());
        return { url, res: { statusCode: response.status, headers: Object.fromEntries(response.headers) }, buffer };
    }
};

(async () => {
    const client = new OVSXHttpClient(registryUrl, requestService);
    const search = await client.search({ query: text, size: 10 });
    const query = await client.query({ extensionId, includeAllVersions: true });
    console.log(JSON.stringify({ search, query }));
})().catch(err => { console.error(err); process.exit(1); });
