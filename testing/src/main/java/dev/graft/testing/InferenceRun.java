package dev.graft.testing;

import dev.graft.compiler.CompiledGraft;
import dev.graft.compiler.GraftCompiler;
import dev.graft.compiler.HostModel;

import ai.onnxruntime.OnnxTensor;
import ai.onnxruntime.OnnxTensorLike;
import ai.onnxruntime.OrtEnvironment;
import ai.onnxruntime.OrtException;
import ai.onnxruntime.OrtSession;
import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.OnnxExport;
import dev.graft.compiler.ir.TensorType;
import dev.graft.compiler.ir.Tensors;
import dev.graft.compiler.spec.AdamWSpec;
import dev.graft.compiler.spec.AdapterSpec;
import dev.graft.compiler.spec.ClassificationSpec;
import dev.graft.compiler.spec.GraftSpec;
import dev.graft.spec.manifest.Parameter;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.nio.DoubleBuffer;
import java.nio.LongBuffer;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * The inference graph of a graft on a float64 tiny host, run on ONNX Runtime without graph
 * optimizations (so two grafts doing the same arithmetic give the same bits), on the batch of
 * {@link WholeStepCheck}, with parameter values a test chooses.
 */
public final class InferenceRun {
  private static final OrtEnvironment ENV = OrtEnvironment.getEnvironment();

  private InferenceRun() {}

  /** The graft of {@code adapters} with a 2-label mean-pooled head on {@code host}. */
  public static CompiledGraft compile(Graph host, AdapterSpec... adapters) {
    GraftSpec spec = new GraftSpec("Tiny", "tiny", List.of(adapters),
        new ClassificationSpec(2, ClassificationSpec.Pooling.MEAN, "", null), AdamWSpec.DEFAULT, null);
    return GraftCompiler.compile(spec, new HostModel("tiny", OnnxExport.write(host, "tiny"), "sha")).orThrow();
  }

  /** The logits [2 × 2, row-major] with each parameter set to {@code values.apply(parameter)}. */
  public static double[] logits(Graph host, CompiledGraft graft, Function<Parameter, double[]> values) throws OrtException {
    Map<String, OnnxTensorLike> external = new HashMap<>();
    Map<String, OnnxTensor> feeds = new HashMap<>();
    try (OrtSession.SessionOptions options = new OrtSession.SessionOptions()) {
      options.setOptimizationLevel(OrtSession.SessionOptions.OptLevel.NO_OPT);
      for (TensorProto t : graft.inference().getGraph().getInitializerList()) {
        if (t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
          external.put(t.getName(), tensor(host.initializers().get(t.getName())));
        }
      }
      options.addExternalInitializers(external);
      try (OrtSession s = ENV.createSession(graft.inference().toByteArray(), options)) {
        feeds.put("input_ids", OnnxTensor.createTensor(ENV, LongBuffer.wrap(WholeStepCheck.INPUT_IDS), WholeStepCheck.SHAPE));
        feeds.put("attention_mask", OnnxTensor.createTensor(ENV, LongBuffer.wrap(WholeStepCheck.MASK), WholeStepCheck.SHAPE));
        feeds.put("token_type_ids",
            OnnxTensor.createTensor(ENV, LongBuffer.wrap(WholeStepCheck.TOKEN_TYPES), WholeStepCheck.SHAPE));
        for (Parameter p : graft.manifest().getParametersList()) {
          feeds.put(p.getName(), OnnxTensor.createTensor(ENV, DoubleBuffer.wrap(values.apply(p)), WholeStepCheck.shape(p)));
        }
        try (OrtSession.Result r = s.run(feeds)) {
          DoubleBuffer b = ((OnnxTensor) r.get(0)).getDoubleBuffer();
          double[] out = new double[b.remaining()];
          b.get(out);
          return out;
        }
      }
    } finally {
      feeds.values().forEach(OnnxTensor::close);
      external.values().forEach(t -> ((OnnxTensor) t).close());
    }
  }

  /** A host initializer's values. */
  public static double[] hostValues(Graph host, String name) {
    return Tensors.readDoubles(host.initializers().get(name));
  }

  private static OnnxTensor tensor(TensorProto t) throws OrtException {
    long[] shape = t.getDimsList().stream().mapToLong(Long::longValue).toArray();
    if (t.getDataType() == TensorType.INT64) {
      return OnnxTensor.createTensor(ENV, LongBuffer.wrap(Tensors.readLongs(t).stream().mapToLong(Long::longValue).toArray()),
          shape);
    }
    return OnnxTensor.createTensor(ENV, DoubleBuffer.wrap(Tensors.readDoubles(t)), shape);
  }
}
