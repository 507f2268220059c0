// The pull and models commands as main.ts registers them, with the test records and the stand-in
// conversion, run as a separate process like the real CLI (the test server's URL comes from the env).
import '../../src/node/register.js';
import { Command } from 'commander';
import { registerModels, registerPull } from '../../src/cli/pull.js';
import { MODELS } from '../../src/zoo/registry.js';
import { standInConvert, testRecords } from './fixture.js';

const program = new Command().name('cts-seg');
const o = { convert: standInConvert, models: [...MODELS, ...testRecords()] };
registerPull(program, o);
registerModels(program, o);
await program.parseAsync(process.argv);
