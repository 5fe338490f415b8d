package dev.graft.testing;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.GraftCompiler;
import dev.graft.compiler.HostModel;

import ai.onnxruntime.OrtException;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.spec.AdamWSpec;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.onnx.Onnx.ModelProto;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;

/**
 * The inference graph of a graft on a float64 tiny host, run on ONNX Runtime without graph
 * optimizations (so two grafts doing the same arithmetic give the same bits), on the batch of
 * {@link WholeStepCheck}, with parameter values a test chooses.
 */
public final class InferenceRun {
  private InferenceRun() {}

  /** The graft of {@code adapters} with a 2-label mean-pooled head on {@code host}. */
  public static CompiledGraft compile(Graph host, AdapterSpec... adapters) {
    GraftSpec spec = new GraftSpec("Tiny", "tiny", List.of(adapters),
        new ClassificationSpec(2, ClassificationSpec.Pooling.MEAN, "", null), AdamWSpec.DEFAULT, null);
    return GraftCompiler.compile(spec, HostModel.of("tiny", OnnxExport.write(host, "tiny"))).orThrow();
  }

  /** The logits [2 × 2, row-major] with each parameter set to {@code values.apply(parameter)}. */
  public static double[] logits(Graph host, CompiledGraft graft, Function<Parameter, double[]> values) throws OrtException {
    Map<String, Feed> feeds = new LinkedHashMap<>();
    feeds.put("input_ids", Feed.longs(WholeStepCheck.INPUT_IDS, WholeStepCheck.SHAPE));
    feeds.put("attention_mask", Feed.longs(WholeStepCheck.MASK, WholeStepCheck.SHAPE));
    feeds.put("token_type_ids", Feed.longs(WholeStepCheck.TOKEN_TYPES, WholeStepCheck.SHAPE));
    for (Parameter p : graft.manifest().getParametersList()) {
      feeds.put(p.getName(), Feed.reals(values.apply(p), WholeStepCheck.shape(p)));
    }
    try (HostSession s = new HostSession(graft.inference(), host, false)) {
      return s.run(feeds, Set.of()).values().iterator().next();
    }
  }

  /**
   * Every output of {@code model} on {@code feeds} (inputs it lacks are left out), its external
   * initializers filled from {@code weights}' initializers of the same names, without graph
   * optimizations.
   */
  public static Map<String, double[]> outputs(ModelProto model, Graph weights, Map<String, Feed> feeds)
      throws OrtException {
    try (HostSession s = new HostSession(model, weights, false)) {
      return s.run(feeds, Set.of());
    }
  }

  /** A host initializer's values. */
  public static double[] hostValues(Graph host, String name) {
    return Tensors.readDoubles(host.initializers().get(name));
  }
}
