package dev.graft.compiler.kinds.host;

import dev.graft.compiler.kinds.Placement;
import dev.graft.compiler.kinds.Site;

import dev.graft.compiler.ir.Graph;
import dev.graft.spec.manifest.Init;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.util.List;
import java.util.Optional;

/**
 * Trains host tensors themselves (BitFit, LayerNorm tuning, full tuning): a host initializer
 * leaves the graph's initializers (the runtime would feed it as external data) and becomes a
 * parameter of the same shape, initialized as a copy of it ({@link Init#HOST_COPY}: the runtime
 * reads the source from the host). Its readers read the parameter.
 */
final class HostParameters {
  private HostParameters() {}

  /**
   * Makes host initializer {@code initializer} the parameter {@code <site module>.<suffix>}.
   * Empty when an earlier declaration made it a parameter already (it is trained once, as that
   * declaration saves it).
   *
   * @param saveKey where saved adapters hold it
   * @param savedTransposed saved as the transpose of the 2-D tensor (torch's [out, in] for a [in, out] MatMul weight)
   */
  static Optional<String> train(Placement placement, Site site, String initializer, String suffix, boolean noDecay,
      String saveKey, boolean savedTransposed) {
    Graph g = placement.graph();
    TensorProto t = g.initializers().get(initializer);
    if (t == null) {
      return Optional.empty();
    }
    long[] shape = t.getDimsList().stream().mapToLong(Long::longValue).toArray();
    Placement.ParameterBuilder b = placement.parameter(site, suffix, shape).initFromHost(Init.HOST_COPY, initializer, 0);
    if (noDecay) {
      b.noDecay();
    }
    if (savedTransposed) {
      b.saveTransposed(saveKey);
    } else {
      b.save(saveKey);
    }
    g.initializers().remove(initializer);
    g.externalInitializers().remove(initializer);
    g.types().remove(initializer);
    String name = b.add();
    if (!name.equals(initializer)) {
      g.replaceUses(initializer, name, List.of());
    }
    return Optional.of(name);
  }
}
