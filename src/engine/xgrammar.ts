import fs from 'node:fs';
import { createRequire } from 'node:module';

/**
 * xgrammar (the grammar engine of vLLM and SGLang) compiled to WebAssembly:
 * the npm package @mlc-ai/web-xgrammar. Its lib/index.js is a UMD bundle in
 * a package marked "type": "module", so Node reads it as ES module and the
 * bundle's CommonJS branch (require, __filename: it locates its inlined
 * WebAssembly through them) throws at import. It is therefore evaluated here
 * as the CommonJS module it is written as, once per process; the WebAssembly
 * is inlined in the file, nothing is fetched.
 */

/** The parts of the package's API this server uses (lib/xgrammar.d.ts). */
export interface XgTokenizerInfo {
  getVocabSize(): number;
  dispose(): void;
}
export interface XgGrammar {
  toString(): string;
  dispose(): void;
}
export interface XgCompiledGrammar {
  dispose(): void;
}
export interface XgGrammarMatcher {
  acceptToken(tokenId: number): boolean;
  getNextTokenBitmask(): Promise<Int32Array>;
  isTerminated(): boolean;
  dispose(): void;
}
export interface XgGrammarCompiler {
  compileGrammar(grammar: XgGrammar): Promise<XgCompiledGrammar>;
  dispose(): void;
}
export interface XgModule {
  TokenizerInfo: {
    createTokenizerInfo(
      encodedVocab: string[],
      vocabType: 'raw' | 'byte_fallback' | 'byte_level',
      prependSpaceInTokenization: boolean,
      vocabSize: number,
      stopTokenIds: number[],
    ): Promise<XgTokenizerInfo>;
  };
  GrammarCompiler: { createGrammarCompiler(info: XgTokenizerInfo, cacheEnabled?: boolean): Promise<XgGrammarCompiler> };
  Grammar: {
    fromJSONSchema(
      schema: string,
      anyWhitespace?: boolean,
      indent?: number,
      separators?: [string, string],
      strictMode?: boolean,
      maxWhitespaceCnt?: number,
    ): Promise<XgGrammar>;
    fromEBNF(ebnf: string, rootRule?: string): Promise<XgGrammar>;
    fromStructuralTag(tag: Record<string, unknown>): Promise<XgGrammar>;
  };
  GrammarMatcher: {
    createGrammarMatcher(
      compiled: XgCompiledGrammar,
      overrideStopTokens?: number[],
      terminateWithoutStopToken?: boolean,
      maxRollbackTokens?: number,
    ): Promise<XgGrammarMatcher>;
  };
}

let loaded: XgModule | undefined;

/** The xgrammar module, evaluated on first use. */
export function xgrammar(): XgModule {
  if (loaded) return loaded;
  const require = createRequire(import.meta.url);
  const file = require.resolve('@mlc-ai/web-xgrammar');
  // Its Emscripten loader's one dynamic import (of node:module, for createRequire) is handed in instead: code made by
  // new Function has no module context to import from under every loader (vitest's VM modules refuse it).
  const source = fs.readFileSync(file, 'utf8').replace("await import('module')", '__nodeModule');
  const mod = { exports: {} as Record<string, unknown> };
  const dir = file.slice(0, file.lastIndexOf('/'));
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- the package's own bundle, evaluated as CommonJS (see above)
  new Function('exports', 'module', 'require', '__filename', '__dirname', '__nodeModule', source)(mod.exports, mod, createRequire(file), file, dir, { createRequire });
  loaded = mod.exports as unknown as XgModule;
  return loaded;
}
