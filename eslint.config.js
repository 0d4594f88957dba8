import js from '@eslint/js';
import tseslint from 'typescript-eslint';


// DESIGN.md's dependency direction, enforced: for each folder of src/, the folders it must never import from.
// Transports, RPC and HTTP are edges that call into calls/; calls/ drives pipeline/, which uses providers/ and
// audio/; nothing imports cmd/ or app.ts (the composition root).
const NEVER_IMPORTS = {
  model: ['audio', 'providers', 'pipeline', 'calls', 'transports', 'rpc', 'store', 'http', 'console', 'cmd'],
  audio: ['providers', 'pipeline', 'calls', 'transports', 'rpc', 'store', 'http', 'console', 'cmd'],
  providers: ['pipeline', 'calls', 'transports', 'rpc', 'store', 'http', 'console', 'cmd'],
  pipeline: ['calls', 'transports', 'rpc', 'store', 'http', 'console', 'cmd'],
  calls: ['transports', 'rpc', 'store', 'http', 'console', 'cmd'],
  store: ['pipeline', 'transports', 'rpc', 'http', 'console', 'cmd'],
  transports: ['rpc', 'store', 'console', 'cmd'],
  rpc: ['transports', 'store', 'http', 'console', 'cmd'],
  http: ['transports', 'console', 'cmd'],
  console: ['transports', 'rpc', 'store', 'cmd'],
};
const layerRules = Object.entries(NEVER_IMPORTS).map(([layer, banned]) => ({
  files: [`src/${layer}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [
          ...banned.map((b) => ({
            regex: `^(\\.\\./)+${b}/`,
            message: `src/${layer}/ must not depend on src/${b}/ (DESIGN.md: dependencies point one way; declare a port instead).`,
          })),
          { regex: '^(\\.\\./)+app\\.js$', message: 'nothing imports app.ts, the composition root' },
        ],
      },
    ],
  },
}));

export default tseslint.config(
  { ignores: ['dist/**', 'dist-bench/**', 'node_modules/**', 'coverage/**', 'src/console/public/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      'no-console': 'error',
    },
  },
  {
    files: ['src/cmd/**', 'bench/**', 'test/**'],
    rules: { 'no-console': 'off' },
  },
  ...layerRules,
  {
    files: ['eslint.config.js'],
    ...tseslint.configs.disableTypeChecked,
  },
);
