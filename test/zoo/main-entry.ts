// The real cts-seg command line with the zoo's test records registered (registerModelRecord), so a
// test can run `--model test_ok_camvid` through every command exactly as a user runs a zoo name.
import { registerModelRecord } from '../../src/zoo/registry.js';
import { testRecords } from './fixture.js';

for (const r of testRecords()) registerModelRecord(r);
await import('../../src/cli/main.js');
