package dev.graft.processor.write;

import com.palantir.javapoet.ArrayTypeName;
import com.palantir.javapoet.ClassName;
import com.palantir.javapoet.TypeName;

/**
 * What the generated class calls in {@code graft-runtime}, in one place so that a change of the
 * runtime's signatures is a change here:
 *
 * <pre>{@code
 * final class AdapterModel implements AutoCloseable {
 *   static AdapterModel load(Class<?> anchor, String name);     // resources from anchor's package
 *   static AdapterModel load(Class<?> anchor, String name, ModelOptions options);
 *   float trainStep(HostFeed hostInputs, long[] labels, float learningRate);     // classification
 *   float trainStep(HostFeed hostInputs, float[][] targets, float learningRate); // regression, multi-label
 *   float trainStep(HostFeed hostInputs, float learningRate);                   // causal LM
 *   float trainStep(HostFeed hostInputs, long[][] labels, float learningRate);   // causal LM, token classes
 *   float[][] predict(HostFeed hostInputs);
 *   float[][][] predictSequence(HostFeed hostInputs);                            // causal LM, token classes
 *   void close();
 * }
 * record HostFeed(Map<String, HostTensor> tensors) {}
 * final class HostTensor {
 *   static HostTensor ofArray(Object nestedPrimitiveArray);   // float[][][][] → float32 [b, c, h, w]
 * }
 * }</pre>
 */
final class RuntimeApi {
  static final ClassName ADAPTER_MODEL = ClassName.get("dev.graft.runtime", "AdapterModel");
  static final ClassName MODEL_OPTIONS = ClassName.get("dev.graft.runtime", "ModelOptions");
  static final ClassName HOST_FEED = ClassName.get("dev.graft.runtime.data", "HostFeed");
  static final ClassName HOST_TENSOR = ClassName.get("dev.graft.runtime.data", "HostTensor");
  static final String OF_ARRAY = "ofArray";
  static final String LOAD = "load";
  static final String TRAIN_STEP = "trainStep";
  static final String PREDICT = "predict";
  static final String PREDICT_SEQUENCE = "predictSequence";
  static final String CLOSE = "close";

  /** Labels of a training batch, one class index per example. */
  static final TypeName LABELS = ArrayTypeName.of(TypeName.LONG);

  /** Float targets of regression and multi-label tasks, [batch, outputs]. */
  static final TypeName TARGETS = ArrayTypeName.of(ArrayTypeName.of(TypeName.FLOAT));

  /** Token labels of a causal LM, [batch, sequence]. */
  static final TypeName TOKEN_LABELS = ArrayTypeName.of(ArrayTypeName.of(TypeName.LONG));

  /** Logits of a causal LM, [batch, sequence, vocab]. */
  static final TypeName SEQUENCE_LOGITS = ArrayTypeName.of(ArrayTypeName.of(ArrayTypeName.of(TypeName.FLOAT)));

  static final TypeName LEARNING_RATE = TypeName.FLOAT;
  static final TypeName LOSS = TypeName.FLOAT;
  /** Logits, [batch, num_labels]. */
  static final TypeName LOGITS = ArrayTypeName.of(ArrayTypeName.of(TypeName.FLOAT));

  private RuntimeApi() {}
}
