package dev.graft.processor.write;

import com.palantir.javapoet.ArrayTypeName;
import com.palantir.javapoet.ClassName;
import com.palantir.javapoet.TypeName;
import java.util.List;

/**
 * What the generated class calls in {@code graft-runtime}, in one place so that a change of the
 * runtime's signatures is a change here:
 *
 * <pre>{@code
 * final class AdapterModel implements AutoCloseable {
 *   static AdapterModel load(Class<?> anchor, String name);     // resources from anchor's package
 *   static AdapterModel load(Class<?> anchor, String name, ModelOptions options);
 *   float trainStep(Map<String, long[][]> hostInputs, long[] labels, float learningRate);     // classification
 *   float trainStep(Map<String, long[][]> hostInputs, float[][] targets, float learningRate); // regression, multi-label
 *   float trainStep(Map<String, long[][]> hostInputs, float learningRate);                   // causal LM
 *   float trainStep(Map<String, long[][]> hostInputs, long[][] labels, float learningRate);   // causal LM
 *   float[][] predict(Map<String, long[][]> hostInputs);
 *   float[][][] predictSequence(Map<String, long[][]> hostInputs);                            // causal LM
 *   void close();
 * }
 * }</pre>
 */
final class RuntimeApi {
  static final ClassName ADAPTER_MODEL = ClassName.get("dev.graft.runtime", "AdapterModel");
  static final ClassName MODEL_OPTIONS = ClassName.get("dev.graft.runtime", "ModelOptions");
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

  /**
   * The value type of the host-input map: the inputs' Java type when they all share it
   * ({@code long[][]} for BERT-style hosts), else {@code Object}.
   */
  static TypeName inputMapValue(List<TypeName> inputTypes) {
    TypeName first = inputTypes.isEmpty() ? ClassName.OBJECT : inputTypes.get(0);
    return inputTypes.stream().allMatch(first::equals) ? first.box() : ClassName.OBJECT;
  }
}
