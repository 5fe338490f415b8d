package dev.graft.processor.write;

import com.palantir.javapoet.ClassName;
import com.palantir.javapoet.CodeBlock;
import com.palantir.javapoet.FieldSpec;
import com.palantir.javapoet.MethodSpec;
import com.palantir.javapoet.NameAllocator;
import com.palantir.javapoet.ParameterizedTypeName;
import com.palantir.javapoet.TypeName;
import com.palantir.javapoet.TypeSpec;
import dev.graft.spec.manifest.HostInput;
import dev.graft.spec.manifest.Loss;
import dev.graft.spec.manifest.Manifest;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import javax.lang.model.element.Modifier;
import org.jspecify.annotations.Nullable;

/**
 * Generates {@code <Name>Graft}: a final class wrapping the runtime's {@code AdapterModel}, with
 * one typed parameter per host input (named from the manifest) on {@code trainStep} and {@code
 * predict}, labels typed by the task's loss (class indices, float targets, LM tokens or none), and
 * the constants {@code NAME}, {@code NUM_LABELS} ({@code NUM_TARGETS} for regression, {@code
 * VOCAB_SIZE} for the causal LM) and {@code INPUT_NAMES}.
 */
public final class GraftClassWriter extends GeneratedSourceWriter {
  /** Suffix of the generated class after the interface's name. */
  public static final String SUFFIX = "Graft";

  private final ClassName className;
  private final Manifest manifest;
  private final String declaration;
  private final List<HostInput> inputs;
  private final List<TypeName> inputTypes;
  private final TypeName mapValue;
  private final Loss loss;

  /**
   * @param className the class to generate
   * @param declaration the annotated interface, for the javadoc
   */
  public GraftClassWriter(ClassName className, String declaration, Manifest manifest) {
    this.className = className;
    this.declaration = declaration;
    this.manifest = manifest;
    this.inputs = manifest.getInputsList();
    this.inputTypes = inputs.stream().map(HostInputs::javaType).toList();
    this.mapValue = RuntimeApi.inputMapValue(inputTypes);
    Loss l = manifest.hasTask() ? manifest.getTask().getLoss() : Loss.SOFTMAX_CROSS_ENTROPY;
    this.loss = l == Loss.LOSS_UNSPECIFIED || l == Loss.UNRECOGNIZED ? Loss.SOFTMAX_CROSS_ENTROPY : l;
  }

  @Override
  protected String packageName() {
    return className.packageName();
  }

  @Override
  protected TypeSpec.Builder type() {
    FieldSpec name = FieldSpec.builder(String.class, "NAME", Modifier.PUBLIC, Modifier.STATIC, Modifier.FINAL)
        .addJavadoc("The graft's name; its resources {@code $L.*.onnx} lie next to this class.\n", manifest.getName())
        .initializer("$S", manifest.getName())
        .build();
    FieldSpec numLabels = FieldSpec.builder(int.class, sizeName(), Modifier.PUBLIC, Modifier.STATIC, Modifier.FINAL)
        .addJavadoc(switch (loss) {
          case MEAN_SQUARED_ERROR -> "Number of values the head predicts per example.\n";
          case BINARY_CROSS_ENTROPY_WITH_LOGITS -> "Number of independent labels the head predicts.\n";
          case CAUSAL_LM_CROSS_ENTROPY -> "Vocabulary size of the host's logits.\n";
          default -> "Number of classes the head predicts.\n";
        })
        .initializer("$L", loss == Loss.CAUSAL_LM_CROSS_ENTROPY
            ? manifest.getTask().getNumOutputs() : manifest.getHead().getNumLabels())
        .build();
    CodeBlock.Builder names = CodeBlock.builder().add("$T.of(", List.class);
    for (int i = 0; i < inputs.size(); i++) {
      names.add(i == 0 ? "$S" : ", $S", inputs.get(i).getName());
    }
    FieldSpec inputNames = FieldSpec.builder(
            ParameterizedTypeName.get(List.class, String.class), "INPUT_NAMES",
            Modifier.PUBLIC, Modifier.STATIC, Modifier.FINAL)
        .addJavadoc("The host's input names, in the order of the parameters of {@link #predict}.\n")
        .initializer(names.add(")").build())
        .build();
    FieldSpec model = FieldSpec.builder(RuntimeApi.ADAPTER_MODEL, "model", Modifier.PRIVATE, Modifier.FINAL).build();

    MethodSpec hostInputs = hostInputs();
    return TypeSpec.classBuilder(className)
        .addModifiers(Modifier.PUBLIC, Modifier.FINAL)
        .addSuperinterface(AutoCloseable.class)
        .addJavadoc("The graft declared by {@link $L}: LoRA adapters and $L on host {@code $L}.\n",
            declaration, taskDescription(), manifest.getHost())
        .addJavadoc("Load it with {@link #load()}; close it to release the ONNX Runtime sessions.\n")
        .addField(name)
        .addField(numLabels)
        .addField(inputNames)
        .addField(model)
        .addMethod(MethodSpec.constructorBuilder()
            .addModifiers(Modifier.PRIVATE)
            .addParameter(RuntimeApi.ADAPTER_MODEL, "model")
            .addStatement("this.$N = model", model)
            .build())
        .addMethod(MethodSpec.methodBuilder("load")
            .addJavadoc("Loads the graft's graphs from the class path next to this class.\n")
            .addModifiers(Modifier.PUBLIC, Modifier.STATIC)
            .returns(className)
            .addStatement("return new $T($T.$L($T.class, $N))", className, RuntimeApi.ADAPTER_MODEL,
                RuntimeApi.LOAD, className, name)
            .build())
        .addMethod(MethodSpec.methodBuilder("load")
            .addJavadoc("Loads the graft's graphs from the class path next to this class, opened with {@code options}\n")
            .addJavadoc("(seed, device, threads, host file, inference only).\n")
            .addModifiers(Modifier.PUBLIC, Modifier.STATIC)
            .addParameter(RuntimeApi.MODEL_OPTIONS, "options")
            .returns(className)
            .addStatement("return new $T($T.$L($T.class, $N, options))", className, RuntimeApi.ADAPTER_MODEL,
                RuntimeApi.LOAD, className, name)
            .build())
        .addMethods(trainSteps(model, hostInputs))
        .addMethod(predict(model, hostInputs))
        .addMethod(MethodSpec.methodBuilder("model")
            .addJavadoc("The runtime model, for what this class does not wrap.\n")
            .addModifiers(Modifier.PUBLIC)
            .returns(RuntimeApi.ADAPTER_MODEL)
            .addStatement("return $N", model)
            .build())
        .addMethod(MethodSpec.methodBuilder("close")
            .addAnnotation(Override.class)
            .addModifiers(Modifier.PUBLIC)
            .addStatement("$N.$L()", model, RuntimeApi.CLOSE)
            .build())
        .addMethod(hostInputs);
  }

  private String sizeName() {
    return switch (loss) {
      case MEAN_SQUARED_ERROR -> "NUM_TARGETS";
      case CAUSAL_LM_CROSS_ENTROPY -> "VOCAB_SIZE";
      default -> "NUM_LABELS";
    };
  }

  private String taskDescription() {
    return switch (loss) {
      case MEAN_SQUARED_ERROR -> "a " + manifest.getHead().getNumLabels() + "-target regression head";
      case BINARY_CROSS_ENTROPY_WITH_LOGITS -> "a " + manifest.getHead().getNumLabels() + "-label multi-label head";
      case CAUSAL_LM_CROSS_ENTROPY -> "the causal language-model loss";
      default -> "a " + manifest.getHead().getNumLabels() + "-class head";
    };
  }

  /** The task's training steps: the labels parameter follows the loss (none or two for the causal LM). */
  private List<MethodSpec> trainSteps(FieldSpec model, MethodSpec hostInputs) {
    return switch (loss) {
      case MEAN_SQUARED_ERROR -> List.of(trainStep(model, hostInputs, RuntimeApi.TARGETS, "targets",
          "the target values, {@code [batch][NUM_TARGETS]}", "mean squared error"));
      case BINARY_CROSS_ENTROPY_WITH_LOGITS -> List.of(trainStep(model, hostInputs, RuntimeApi.TARGETS, "labels",
          "0/1 (or soft, in [0, 1]) targets, {@code [batch][NUM_LABELS]}", "mean binary cross-entropy"));
      case CAUSAL_LM_CROSS_ENTROPY -> List.of(
          trainStep(model, hostInputs, null, "labels", "", "mean next-token cross-entropy"),
          trainStep(model, hostInputs, RuntimeApi.TOKEN_LABELS, "labels",
              "token labels, {@code [batch][sequence]} as the input ids; position t learns {@code labels[t+1]}",
              "mean next-token cross-entropy"));
      default -> List.of(trainStep(model, hostInputs, RuntimeApi.LABELS, "labels",
          "the class of each example, in {@code [0, NUM_LABELS)}", "mean cross-entropy"));
    };
  }

  private MethodSpec trainStep(FieldSpec model, MethodSpec hostInputs, @Nullable TypeName labelsType,
      String labelsName, String labelsDoc, String lossName) {
    NameAllocator names = new NameAllocator();
    MethodSpec.Builder m = MethodSpec.methodBuilder("trainStep")
        .addJavadoc(labelsType == null
            ? "Runs one training step (forward, backward, AdamW update) on a batch; the labels are its input ids.\n\n"
            : "Runs one training step (forward, backward, AdamW update) on a batch.\n\n")
        .addModifiers(Modifier.PUBLIC)
        .returns(RuntimeApi.LOSS);
    List<String> args = inputParameters(m, names, true);
    String labels = names.newName(labelsName, "labels");
    String learningRate = names.newName("learningRate", "learningRate");
    if (labelsType != null) {
      m.addParameter(labelsType, labels).addJavadoc("@param $L $L\n", labels, labelsDoc);
    }
    m.addParameter(RuntimeApi.LEARNING_RATE, learningRate)
        .addJavadoc("@param $L the step size of this update\n", learningRate)
        .addJavadoc("@return the batch's $L loss before the update\n", lossName);
    if (labelsType == null) {
      m.addStatement("return $N.$L($N($L), $N)", model, RuntimeApi.TRAIN_STEP, hostInputs,
          String.join(", ", args), learningRate);
    } else {
      m.addStatement("return $N.$L($N($L), $N, $N)", model, RuntimeApi.TRAIN_STEP, hostInputs,
          String.join(", ", args), labels, learningRate);
    }
    return m.build();
  }

  private MethodSpec predict(FieldSpec model, MethodSpec hostInputs) {
    NameAllocator names = new NameAllocator();
    boolean lm = loss == Loss.CAUSAL_LM_CROSS_ENTROPY;
    MethodSpec.Builder m = MethodSpec.methodBuilder("predict")
        .addJavadoc(switch (loss) {
          case MEAN_SQUARED_ERROR -> "Computes the predicted values for a batch.\n\n";
          case CAUSAL_LM_CROSS_ENTROPY -> "Computes next-token logits at every position of a batch.\n\n";
          default -> "Computes class logits for a batch.\n\n";
        })
        .addModifiers(Modifier.PUBLIC)
        .returns(lm ? RuntimeApi.SEQUENCE_LOGITS : RuntimeApi.LOGITS);
    List<String> args = inputParameters(m, names, true);
    m.addJavadoc(switch (loss) {
          case MEAN_SQUARED_ERROR -> "@return predictions, {@code [batch][NUM_TARGETS]}\n";
          case CAUSAL_LM_CROSS_ENTROPY -> "@return logits, {@code [batch][sequence][VOCAB_SIZE]}\n";
          default -> "@return logits, {@code [batch][NUM_LABELS]}\n";
        })
        .addStatement("return $N.$L($N($L))", model, lm ? RuntimeApi.PREDICT_SEQUENCE : RuntimeApi.PREDICT,
            hostInputs, String.join(", ", args));
    return m.build();
  }

  /** The map the runtime takes, keyed by the host's real input names. */
  private MethodSpec hostInputs() {
    NameAllocator names = new NameAllocator();
    MethodSpec.Builder m = MethodSpec.methodBuilder("hostInputs")
        .addModifiers(Modifier.PRIVATE, Modifier.STATIC)
        .returns(ParameterizedTypeName.get(ClassName.get(Map.class), ClassName.get(String.class), mapValue));
    List<String> args = inputParameters(m, names, false);
    String map = names.newName("hostInputs", "map");
    m.addStatement("$T<$T, $T> $N = new $T<>()", Map.class, String.class, mapValue, map, LinkedHashMap.class);
    for (int i = 0; i < inputs.size(); i++) {
      m.addStatement("$N.put($S, $N)", map, inputs.get(i).getName(), args.get(i));
    }
    m.addStatement("return $N", map);
    return m.build();
  }

  /** Adds one parameter per host input; returns their names in input order. */
  private List<String> inputParameters(MethodSpec.Builder m, NameAllocator names, boolean documented) {
    List<String> out = new ArrayList<>();
    for (int i = 0; i < inputs.size(); i++) {
      HostInput input = inputs.get(i);
      String name = names.newName(HostInputs.parameterName(input.getName()), "input:" + i);
      m.addParameter(inputTypes.get(i), name);
      if (documented) {
        m.addJavadoc("@param $L host input {@code $L}, $L\n", name, input.getName(), HostInputs.describe(input));
      }
      out.add(name);
    }
    return out;
  }
}
