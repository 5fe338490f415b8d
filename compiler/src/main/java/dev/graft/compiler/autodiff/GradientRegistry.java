package dev.graft.compiler.autodiff;

import dev.graft.compiler.ir.Graph;
import dev.graft.compiler.ir.Node;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.SortedSet;
import java.util.TreeMap;
import java.util.TreeSet;
import org.jspecify.annotations.Nullable;

/**
 * The one registry of gradient rules: the table op type → rule, keyed by ai.onnx op type (nodes
 * are normalized to opset 17 on import, so each op has one form), and the ops registered as
 * having no gradient (shape arithmetic, comparisons, constants, random draws); the few com.microsoft
 * ops the compiler itself writes are keyed {@code com.microsoft:<op>}. The rules live
 * by theme: {@link ElementwiseGradients}, {@link ActivationGradients}, {@link
 * ReductionGradients}, {@link ShapeGradients}, {@link ContractionGradients}, {@link
 * NormalizationGradients} and {@link ConvGradients} (Gemm and the CNN ops).
 */
public final class GradientRegistry {
  /** The key prefix of a com.microsoft op (the ops {@code ImportFusion} writes), e.g. {@code com.microsoft:Gelu}. */
  static final String MS = "com.microsoft:";

  private static final Map<String, GradientRule> RULES = new TreeMap<>(Map.ofEntries(
      // Elementwise arithmetic.
      Map.entry("Identity", ElementwiseGradients::identity),
      Map.entry("Add", ElementwiseGradients::add),
      Map.entry("Sub", ElementwiseGradients::sub),
      Map.entry("Mul", ElementwiseGradients::mul),
      Map.entry("Div", ElementwiseGradients::div),
      Map.entry("Pow", ElementwiseGradients::pow),
      Map.entry("Neg", ElementwiseGradients::neg),
      Map.entry("Sqrt", ElementwiseGradients::sqrt),
      Map.entry("Reciprocal", ElementwiseGradients::reciprocal),
      Map.entry("Exp", ElementwiseGradients::exp),
      Map.entry("Log", ElementwiseGradients::log),
      Map.entry("Abs", ElementwiseGradients::abs),
      Map.entry("Sin", ElementwiseGradients::sin),
      Map.entry("Cos", ElementwiseGradients::cos),
      Map.entry("Erf", ElementwiseGradients::erf),
      Map.entry("Cast", ElementwiseGradients::cast),
      Map.entry("CastLike", ElementwiseGradients::castLike),
      Map.entry("Where", ElementwiseGradients::where),
      Map.entry("Clip", ElementwiseGradients::clip),
      Map.entry("Max", ElementwiseGradients::minMax),
      Map.entry("Min", ElementwiseGradients::minMax),
      // Activations.
      Map.entry("Tanh", ActivationGradients::tanh),
      Map.entry("Sigmoid", ActivationGradients::sigmoid),
      Map.entry("Relu", ActivationGradients::relu),
      Map.entry("LeakyRelu", ActivationGradients::leakyRelu),
      Map.entry(MS + "Gelu", ActivationGradients::gelu),
      Map.entry(MS + "FastGelu", ActivationGradients::fastGelu),
      Map.entry("Softmax", ActivationGradients::softmax),
      Map.entry("LogSoftmax", ActivationGradients::logSoftmax),
      Map.entry("Dropout", ActivationGradients::dropout),
      // Reductions.
      Map.entry("ReduceSum", ReductionGradients::reduceSum),
      Map.entry("ReduceMean", ReductionGradients::reduceMean),
      Map.entry("ReduceMax", ReductionGradients::reduceMax),
      // Shape and data movement.
      Map.entry("Transpose", ShapeGradients::transpose),
      Map.entry("Reshape", ShapeGradients::reshapeBack),
      Map.entry("Unsqueeze", ShapeGradients::reshapeBack),
      Map.entry("Squeeze", ShapeGradients::reshapeBack),
      Map.entry("Flatten", ShapeGradients::reshapeBack),
      Map.entry("Expand", ShapeGradients::expand),
      Map.entry("Concat", ShapeGradients::concat),
      Map.entry("Split", ShapeGradients::split),
      Map.entry("Slice", ShapeGradients::slice),
      Map.entry("Gather", ShapeGradients::gather),
      Map.entry("GatherElements", ShapeGradients::gatherElements),
      Map.entry("Tile", ShapeGradients::tile),
      Map.entry("Trilu", ShapeGradients::trilu),
      Map.entry("Pad", ShapeGradients::pad),
      // Contractions.
      Map.entry("MatMul", ContractionGradients::matmul),
      Map.entry("Einsum", ContractionGradients::einsum),
      Map.entry("Gemm", ConvGradients::gemm),
      // Normalization.
      Map.entry("LayerNormalization", NormalizationGradients::layerNorm),
      Map.entry("SimplifiedLayerNormalization", NormalizationGradients::simplifiedLayerNorm),
      Map.entry("BatchNormalization", ConvGradients::batchNormalization),
      // Convolution and pooling.
      Map.entry("Conv", ConvGradients::conv),
      Map.entry("MaxPool", ConvGradients::maxPool),
      Map.entry("AveragePool", ConvGradients::averagePool),
      Map.entry("GlobalAveragePool", ConvGradients::globalAveragePool)));

  /** Ops whose outputs carry no gradient. */
  private static final SortedSet<String> NON_DIFFERENTIABLE = Collections.unmodifiableSortedSet(new TreeSet<>(List.of(
      // Shapes, sizes and index arithmetic.
      "Constant", "Shape", "Size", "ConstantOfShape", "Range", "NonZero", "OneHot", "EyeLike",
      // Comparisons, logic and tests.
      "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Xor", "IsNaN", "IsInf",
      // Piecewise-constant functions.
      "ArgMax", "ArgMin", "Floor", "Ceil", "Round", "Sign", "Hardmax",
      // Random draws.
      "Bernoulli", "RandomNormalLike", "RandomUniformLike", "Multinomial",
      // Graft's own stop-gradient (dev.graft:StopGradient, written as an Identity): no gradient by definition.
      Graph.STOP_GRADIENT)));

  /** Ops whose rules accept a missing gradient for their first output (others get zeros). */
  private static final Set<String> ANY_OUTPUT_GRADIENT = Set.of("Split");

  private GradientRegistry() {}

  public static @Nullable GradientRule rule(String opType) {
    return RULES.get(opType);
  }

  /** The rule of {@code n}'s op in its domain (ai.onnx, or com.microsoft keyed {@code com.microsoft:<op>}); null if none. */
  static @Nullable GradientRule rule(Node n) {
    return n.domain().isEmpty() || n.domain().equals("ai.onnx") ? RULES.get(n.opType())
        : n.domain().equals(Graph.MS_DOMAIN) ? RULES.get(MS + n.opType()) : null;
  }

  public static boolean isNonDifferentiable(String opType) {
    return NON_DIFFERENTIABLE.contains(opType);
  }

  /** Whether the rule of {@code opType} handles a null gradient for output 0 (see {@link Autodiff}). */
  static boolean acceptsAnyOutputGradient(String opType) {
    return ANY_OUTPUT_GRADIENT.contains(opType);
  }

  /** Op types with a gradient rule, sorted. */
  public static SortedSet<String> differentiableOps() {
    return Collections.unmodifiableSortedSet(new TreeSet<>(RULES.keySet()));
  }

  public static SortedSet<String> nonDifferentiableOps() {
    return NON_DIFFERENTIABLE;
  }
}
