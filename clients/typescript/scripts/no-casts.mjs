// Fails when the given TypeScript files contain a type cast (`x as T`,
// `<T>x`), a non-null assertion (`x!`), `any`, or a @ts-ignore/@ts-expect-error
// /@ts-nocheck comment: the e2e must type-check on the generated types alone.
// Reads the syntax tree (TypeScript's own parser), so words in strings and
// comments are not mistaken for casts. `as const` is allowed (not a cast).
//   node scripts/no-casts.mjs e2e/flow.ts src/index.ts
import ts from 'typescript';
import { readFileSync } from 'node:fs';

let bad = 0;
for (const file of process.argv.slice(2)) {
  const text = readFileSync(file, 'utf8');
  const src = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const report = (node, what) => {
    const { line, character } = src.getLineAndCharacterOfPosition(node.getStart(src));
    console.error(`${file}:${line + 1}:${character + 1}: ${what}: ${node.getText(src).slice(0, 60)}`);
    bad++;
  };
  const visit = (node) => {
    if (ts.isAsExpression(node) && !(ts.isTypeReferenceNode(node.type) && node.type.typeName.getText(src) === 'const')) report(node, 'type cast (as)');
    else if (ts.isTypeAssertionExpression(node)) report(node, 'type cast (<T>)');
    else if (ts.isNonNullExpression(node)) report(node, 'non-null assertion (!)');
    else if (node.kind === ts.SyntaxKind.AnyKeyword) report(node, 'any');
    else if (ts.isSatisfiesExpression?.(node)) { /* satisfies checks, it does not cast */ }
    ts.forEachChild(node, visit);
  };
  visit(src);
  for (const m of text.matchAll(/@ts-(ignore|expect-error|nocheck)/g)) {
    const { line } = src.getLineAndCharacterOfPosition(m.index);
    console.error(`${file}:${line + 1}: @ts-${m[1]}`);
    bad++;
  }
}
if (bad) { console.error(`no-casts: ${bad} finding(s)`); process.exit(1); }
console.log(`no-casts: ${process.argv.length - 2} file(s) clean`);
