/** `--name=value` flags of a bench script; bare `--name` means `true`. */
export function parseArgs(argv: string[] = process.argv.slice(2)): Map<string, string> {
  const out = new Map<string, string>();
  for (const arg of argv) {
    const m = /^--([\w-]+)(?:=(.*))?$/.exec(arg);
    if (!m) throw new Error(`unexpected argument '${arg}' (flags look like --name=value)`);
    out.set(m[1]!, m[2] ?? 'true');
  }
  return out;
}

export type DbKind = 'external' | 'embedded';

export function dbKind(args: Map<string, string>): DbKind {
  const v = args.get('db') ?? 'external';
  if (v !== 'external' && v !== 'embedded') throw new Error(`--db must be external or embedded (got '${v}')`);
  return v;
}

export function intArg(args: Map<string, string>, name: string, fallback: number): number {
  const raw = args.get(name);
  if (raw === undefined) return fallback;
  const n = Number(raw.replace(/_/g, ''));
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer (got '${raw}')`);
  return n;
}
