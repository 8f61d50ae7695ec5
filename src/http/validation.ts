import { KindGuard, type TSchema } from '@sinclair/typebox';
import { TypeCompiler, ValueErrorType } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';
import type { FastifySchemaCompiler } from 'fastify';

/** A field name safe to repeat back: an identifier of at most 40 characters. */
const PLAIN_FIELD = /^[A-Za-z_][A-Za-z0-9_]{0,39}$/;

function validationError(errors: Iterable<{ type: ValueErrorType; path: string; message: string }>, part: string): Error {
  const list: { instancePath: string; message: string }[] = [];
  for (const e of errors) {
    // An unknown field's name is the client's text, not the schema's. A plain short name (a typo of
    // a real field, the usual case) is named, since that is what the client must fix; any other is
    // not echoed (markup, or a name as long as the body or URL): the object holding it is named.
    if (e.type === ValueErrorType.ObjectAdditionalProperties) {
      const field = e.path.slice(e.path.lastIndexOf('/') + 1);
      const parent = e.path.slice(0, e.path.lastIndexOf('/'));
      list.push(PLAIN_FIELD.test(field) ? { instancePath: e.path, message: 'is not a field of this request' } : { instancePath: parent, message: 'has an unknown field' });
    }
    else list.push({ instancePath: e.path, message: e.message });
    if (list.length >= 5) break;
  }
  return Object.assign(new Error('validation failed'), { validation: list, validationContext: part, statusCode: 400, code: 'FST_ERR_VALIDATION' });
}

/**
 * TypeBox validation for every route. Bodies are checked strictly: no type coercion (an amount
 * sent as a JSON number is refused, not turned into a string) and no silent removal of unknown
 * fields (schemas say `additionalProperties: false`, so unknown fields are refused). Query strings,
 * params and headers arrive as strings and are converted to the schema's types first; a number is
 * converted only from a plain decimal spelling (no exponent, no hex, no fraction for an integer).
 */
export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const checker = TypeCompiler.Compile(schema);
  if (httpPart === 'body') {
    // A route whose body schema is Type.Optional takes a request without a body (Fastify hands it
    // over as null): the compiled check ignores the modifier at the root and would refuse it.
    const optional = KindGuard.IsOptional(schema);
    return (data: unknown) =>
      (optional && (data === undefined || data === null)) || checker.Check(data) ? { value: data } : { error: validationError(checker.Errors(data), 'body') };
  }
  const numeric = numericFields(schema);
  return (data: unknown) => {
    // Value.Convert reads "1.5", "1e2" or "1e300" as the integer 1 and "0x10" as 16: a number field
    // takes only a plain decimal spelling; anything else stays a string, which the check refuses.
    // (Convert may change `data` in place: the strings are read before it runs.)
    const unconvertible: [string, string][] = [];
    if (numeric.size > 0 && typeof data === 'object' && data !== null) {
      for (const [field, integer] of numeric) {
        const raw = (data as Record<string, unknown>)[field];
        if (typeof raw === 'string' && !(integer ? PLAIN_INTEGER : PLAIN_NUMBER).test(raw)) unconvertible.push([field, raw]);
      }
    }
    const converted = Value.Convert(schema, data);
    if (typeof converted === 'object' && converted !== null) for (const [field, raw] of unconvertible) (converted as Record<string, unknown>)[field] = raw;
    return checker.Check(converted) ? { value: converted } : { error: validationError(checker.Errors(converted), httpPart ?? 'request') };
  };
};

const PLAIN_INTEGER = /^-?\d{1,16}$/;
const PLAIN_NUMBER = /^-?\d{1,16}(\.\d{1,16})?$/;

/** The top-level fields of an object schema typed integer or number (true: integer). */
function numericFields(schema: TSchema): Map<string, boolean> {
  const out = new Map<string, boolean>();
  const properties = (schema as { properties?: Record<string, TSchema> }).properties;
  for (const [name, field] of Object.entries(properties ?? {})) {
    if (field.type === 'integer') out.set(name, true);
    else if (field.type === 'number') out.set(name, false);
  }
  return out;
}
