/**
 * Appends nodes and initializers to an ONNX graph under construction, with names unique across
 * it (ONNX requires that of tensors; node names share the same scope here so that a node and
 * its output can be told apart in a viewer).
 */
import { DataType, NameScope } from './ir.ts';
import type { Attribute, Node, Tensor } from './ir.ts';

export class GraphBuilder {
  readonly nodes: Node[] = [];
  readonly initializers: Tensor[] = [];
  private readonly scope: NameScope;

  constructor(reserved: string[]) {
    this.scope = new NameScope(reserved);
  }

  name(base: string): string {
    return this.scope.name(base);
  }

  node(opType: string, name: string, input: string[], output: string[], attribute: Attribute[] = []): void {
    this.nodes.push({ name: this.name(name), op_type: opType, input, output, attribute });
  }

  float(base: string, dims: number[], values: Float32Array): string {
    return this.add(base, dims, DataType.FLOAT, values);
  }

  /** A float64 constant, for passes that still compute with it; see float32-constants.ts. */
  double(base: string, dims: number[], values: Float64Array): string {
    return this.add(base, dims, DataType.DOUBLE, values);
  }

  int64(base: string, values: number[]): string {
    return this.add(base, [values.length], DataType.INT64, BigInt64Array.from(values, (v) => BigInt(v)));
  }

  private add(base: string, dims: number[], dataType: DataType, data: Tensor['data']): string {
    const name = this.name(base);
    this.initializers.push({ name, dims, data_type: dataType, data });
    return name;
  }
}
