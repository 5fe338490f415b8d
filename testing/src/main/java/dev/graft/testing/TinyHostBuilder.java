package dev.graft.testing;

import static dev.graft.compiler.ir.Node.attr;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Tensors;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/** What the IR-built tiny hosts share: the graph, seeded weights in one element type, and torch-shaped blocks. */
abstract class TinyHostBuilder {
  final Graph g = new Graph();
  /** FLOAT as exported models are, or DOUBLE for finite-difference checks. */
  final int elem;
  private final Random random;

  TinyHostBuilder(long seed, int elem) {
    this.elem = elem;
    random = new Random(seed);
  }

  /** An initializer with real data: {@code offset + scale·N(0, 1)} (of {@code |scale·N(0, 1)|} when {@code positive}), drawn in order. */
  final String weight(String name, double scale, double offset, boolean positive, long... dims) {
    List<Long> d = new ArrayList<>();
    long n = 1;
    for (long x : dims) {
      d.add(x);
      n *= x;
    }
    double[] v = new double[(int) n];
    for (int i = 0; i < v.length; i++) {
      double z = scale * random.nextGaussian();
      v[i] = offset + (positive ? Math.abs(z) : z);
    }
    g.addInitializer(Tensors.floats(name, elem, d, v), false);
    return name;
  }

  final String weight(String name, double scale, double offset, long... dims) {
    return weight(name, scale, offset, false, dims);
  }

  /** {@code x·W + b} as a torch Linear (or Conv1D) exports: W [in, out] ~ N(0, 1/in), b ~ N(0, 0.01). */
  final String linear(String module, String param, String x, long in, long out) {
    String w = weight(param + ".weight", 1 / Math.sqrt(in), 0, in, out);
    String b = weight(param + ".bias", 0.1, 0, out);
    return g.op(module + "/Add", "Add", List.of(g.op(module + "/MatMul", "MatMul", List.of(x, w)), b));
  }

  /** LayerNorm over the last axis of width {@code hidden}, decomposed as torch exports it (ReduceMean, Sub, Pow, Sqrt, Div). */
  final String layerNorm(String module, String param, String x, double eps, long hidden) {
    String mean = g.op(module + "/ReduceMean", "ReduceMean", List.of(x), attr("axes", List.of(-1L)));
    String d = g.op(module + "/Sub", "Sub", List.of(x, mean));
    String sq = g.op(module + "/Pow", "Pow", List.of(d, g.scalar(module + "/Constant", elem, 2.0)));
    String var = g.op(module + "/ReduceMean_1", "ReduceMean", List.of(sq), attr("axes", List.of(-1L)));
    String e = g.op(module + "/Add", "Add", List.of(var, g.scalar(module + "/Constant_1", elem, eps)));
    String norm = g.op(module + "/Div", "Div", List.of(d, g.op(module + "/Sqrt", "Sqrt", List.of(e))));
    String scaled = g.op(module + "/Mul", "Mul", List.of(norm, weight(param + ".weight", 0.1, 1, hidden)));
    return g.op(module + "/Add_1", "Add", List.of(scaled, weight(param + ".bias", 0.1, 0, hidden)));
  }
}
