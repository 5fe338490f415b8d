package dev.graft.processor.write;

import com.palantir.javapoet.ClassName;
import com.palantir.javapoet.CodeBlock;
import com.palantir.javapoet.FieldSpec;
import com.palantir.javapoet.MethodSpec;
import com.palantir.javapoet.NameAllocator;
import com.palantir.javapoet.ParameterizedTypeName;
import com.palantir.javapoet.TypeName;
import com.palantir.javapoet.TypeSpec;
import dev.graft.compiler.kinds.AdapterKind;
import dev.graft.compiler.kinds.AdapterKinds;
import dev.graft.compiler.tasks.TaskKind;
import dev.graft.spec.manifest.Adapter;
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
 * predict}, labels typed by the task's {@link TaskKind.Labels} (class indices, float targets, LM
 * tokens or none), and the constants {@code NAME}, {@code NUM_LABELS} ({@code NUM_TARGETS} for
 * target values, {@code VOCAB_SIZE} for next-token labels) and {@code INPUT_NAMES}. Its javadoc
 * names the declaration's adapters by kind (and name), its task and its host.
 */
public final class GraftClassWriter extends GeneratedSourceWriter {
  /** Suffix of the generated class after the interface's name. */
  public static final String SUFFIX = "Graft";

  private final ClassName className;
  private final Manifest manifest;
  private final String declaration;
  private final List<HostInput> inputs;
  private final List<TypeName> inputTypes;
  private final TaskKind task;
  private final TaskKind.Labels labels;
  private final long outputs;

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
    // Manifests without a task (or an unknown loss) are classification.
    this.task = TaskKind.of(manifest.getTask().getLoss())
        .orElseGet(() -> TaskKind.of(Loss.SOFTMAX_CROSS_ENTROPY).orElseThrow());
    this.labels = task.labels();
    this.outputs = manifest.hasHead() ? manifest.getHead().getNumLabels() : manifest.getTask().getNumOutputs();
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
        .addJavadoc(switch (labels) {
          case TARGET_VALUES -> "Number of values the head predicts per example.\n";
          case MULTI_HOT -> "Number of independent labels the head predicts.\n";
          case NEXT_TOKENS -> "Vocabulary size of the host's logits.\n";
          case CLASS_INDEX -> "Number of classes the head predicts.\n";
          case TOKEN_CLASSES -> "Number of classes the head predicts per token.\n";
        })
        .initializer("$L", outputs)
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
        .addJavadoc("The graft declared by {@link $L}: $L on host {@code $L}, with $L.\n",
            declaration, adapterDescription(), manifest.getHost(), task.describe(outputs))
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
    return switch (labels) {
      case TARGET_VALUES -> "NUM_TARGETS";
      case NEXT_TOKENS -> "VOCAB_SIZE";
      case CLASS_INDEX, MULTI_HOT, TOKEN_CLASSES -> "NUM_LABELS";
    };
  }

  /**
   * The declaration's adapters by kind, e.g. {@code "LoRA"}, {@code "LoRA {@code sentiment} and
   * IA³"}: one entry per named adapter, one per kind of the unnamed ones; {@code "no adapters"}
   * for a head alone.
   */
  private String adapterDescription() {
    List<String> parts = new ArrayList<>();
    for (Adapter a : manifest.getAdaptersList()) {
      String kind = AdapterKinds.byId(a.getKind()).map(AdapterKind::displayName).orElse(a.getKind());
      String part = a.getName().isEmpty() ? kind : kind + " {@code " + a.getName() + "}";
      if (!parts.contains(part)) {
        parts.add(part);
      }
    }
    if (parts.isEmpty()) {
      return "no adapters";
    }
    String last = parts.remove(parts.size() - 1);
    // A name or kind must not end the comment it is written into.
    return ((parts.isEmpty() ? "" : String.join(", ", parts) + " and ") + last).replace("*/", "*&#47;");
  }

  /** The task's training steps: the labels parameter follows the labels' form (none or two for next tokens). */
  private List<MethodSpec> trainSteps(FieldSpec model, MethodSpec hostInputs) {
    String name = task.labelsName();
    String loss = task.lossDescription();
    return switch (labels) {
      case TARGET_VALUES -> List.of(trainStep(model, hostInputs, RuntimeApi.TARGETS, name,
          "the target values, {@code [batch][NUM_TARGETS]}", loss));
      case MULTI_HOT -> List.of(trainStep(model, hostInputs, RuntimeApi.TARGETS, name,
          "0/1 (or soft, in [0, 1]) targets, {@code [batch][NUM_LABELS]}", loss));
      case NEXT_TOKENS -> List.of(
          trainStep(model, hostInputs, null, name, "", loss),
          trainStep(model, hostInputs, RuntimeApi.TOKEN_LABELS, name,
              "token labels, {@code [batch][sequence]} as the input ids; position t learns {@code labels[t+1]}", loss));
      case CLASS_INDEX -> List.of(trainStep(model, hostInputs, RuntimeApi.LABELS, name,
          "the class of each example, in {@code [0, NUM_LABELS)}", loss));
      case TOKEN_CLASSES -> List.of(trainStep(model, hostInputs, RuntimeApi.TOKEN_LABELS, name,
          "the class of each token, {@code [batch][sequence]} in {@code [0, NUM_LABELS)} or the ignore index", loss));
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
    boolean lm = labels == TaskKind.Labels.NEXT_TOKENS || labels == TaskKind.Labels.TOKEN_CLASSES;
    MethodSpec.Builder m = MethodSpec.methodBuilder("predict")
        .addJavadoc(switch (labels) {
          case TARGET_VALUES -> "Computes the predicted values for a batch.\n\n";
          case NEXT_TOKENS -> "Computes next-token logits at every position of a batch.\n\n";
          case TOKEN_CLASSES -> "Computes class logits for every token of a batch.\n\n";
          case CLASS_INDEX, MULTI_HOT -> "Computes class logits for a batch.\n\n";
        })
        .addModifiers(Modifier.PUBLIC)
        .returns(lm ? RuntimeApi.SEQUENCE_LOGITS : RuntimeApi.LOGITS);
    List<String> args = inputParameters(m, names, true);
    m.addJavadoc(switch (labels) {
          case TARGET_VALUES -> "@return predictions, {@code [batch][NUM_TARGETS]}\n";
          case NEXT_TOKENS -> "@return logits, {@code [batch][sequence][VOCAB_SIZE]}\n";
          case TOKEN_CLASSES -> "@return logits, {@code [batch][sequence][NUM_LABELS]}\n";
          case CLASS_INDEX, MULTI_HOT -> "@return logits, {@code [batch][NUM_LABELS]}\n";
        })
        .addStatement("return $N.$L($N($L))", model, lm ? RuntimeApi.PREDICT_SEQUENCE : RuntimeApi.PREDICT,
            hostInputs, String.join(", ", args));
    return m.build();
  }

  /** The host feed the runtime takes: each typed input as a tensor, keyed by the host's real input names. */
  private MethodSpec hostInputs() {
    NameAllocator names = new NameAllocator();
    MethodSpec.Builder m = MethodSpec.methodBuilder("hostInputs")
        .addModifiers(Modifier.PRIVATE, Modifier.STATIC)
        .returns(RuntimeApi.HOST_FEED);
    List<String> args = inputParameters(m, names, false);
    String map = names.newName("hostInputs", "map");
    m.addStatement("$T<$T, $T> $N = new $T<>()", Map.class, String.class, RuntimeApi.HOST_TENSOR, map,
        LinkedHashMap.class);
    for (int i = 0; i < inputs.size(); i++) {
      m.addStatement("$N.put($S, $T.$L($N))", map, inputs.get(i).getName(), RuntimeApi.HOST_TENSOR,
          RuntimeApi.OF_ARRAY, args.get(i));
    }
    m.addStatement("return new $T($N)", RuntimeApi.HOST_FEED, map);
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
