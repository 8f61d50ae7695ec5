import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { Value } from '@sinclair/typebox/value';
import type { FastifySchemaCompiler } from 'fastify';

function validationError(errors: Iterable<{ path: string; message: string }>, part: string): Error {
  const list: { instancePath: string; message: string }[] = [];
  for (const e of errors) {
    list.push({ instancePath: e.path, message: e.message });
    if (list.length >= 5) break;
  }
  return Object.assign(new Error('validation failed'), { validation: list, validationContext: part, statusCode: 400, code: 'FST_ERR_VALIDATION' });
}

/**
 * TypeBox validation for every route. Bodies are checked strictly: no type coercion (an amount
 * sent as a JSON number is refused, not turned into a string) and no silent removal of unknown
 * fields (schemas say `additionalProperties: false`, so unknown fields are refused). Query strings,
 * params and headers arrive as strings and are converted to the schema's types first.
 */
export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const checker = TypeCompiler.Compile(schema);
  if (httpPart === 'body') {
    return (data: unknown) => (checker.Check(data) ? { value: data } : { error: validationError(checker.Errors(data), 'body') });
  }
  return (data: unknown) => {
    const converted = Value.Convert(schema, data);
    return checker.Check(converted) ? { value: converted } : { error: validationError(checker.Errors(converted), httpPart ?? 'request') };
  };
};
