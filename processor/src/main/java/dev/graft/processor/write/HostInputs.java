package dev.graft.processor.write;

import com.palantir.javapoet.ArrayTypeName;
import com.palantir.javapoet.ClassName;
import com.palantir.javapoet.TypeName;
import dev.graft.spec.manifest.Dim;
import dev.graft.spec.manifest.HostInput;
import java.util.Locale;
import java.util.stream.Collectors;

/** How a host input of the manifest appears in Java: its parameter name and array type. */
final class HostInputs {
  private HostInputs() {}

  /** ONNX element type number → Java element type; null for types Java cannot carry. */
  static TypeName elementType(int onnxElemType) {
    return switch (onnxElemType) {
      case 1, 10, 16 -> TypeName.FLOAT; // FLOAT, FLOAT16, BFLOAT16 (widened)
      case 2, 3 -> TypeName.BYTE; // UINT8, INT8
      case 4, 5 -> TypeName.SHORT; // UINT16, INT16
      case 6, 12 -> TypeName.INT; // INT32, UINT32
      case 7, 13 -> TypeName.LONG; // INT64, UINT64
      case 8 -> ClassName.get(String.class); // STRING
      case 9 -> TypeName.BOOLEAN; // BOOL
      case 11 -> TypeName.DOUBLE; // DOUBLE
      default -> ClassName.OBJECT;
    };
  }

  /** The Java type of an input: its element type with one array level per dimension. */
  static TypeName javaType(HostInput input) {
    TypeName t = elementType(input.getElemType());
    for (int i = 0; i < input.getShapeCount(); i++) {
      t = ArrayTypeName.of(t);
    }
    return t;
  }

  /** {@code input_ids} → {@code inputIds}; any non-alphanumeric run separates words. */
  static String parameterName(String inputName) {
    StringBuilder out = new StringBuilder();
    boolean upperNext = false;
    for (int i = 0; i < inputName.length(); i++) {
      char c = inputName.charAt(i);
      if (!Character.isLetterOrDigit(c)) {
        upperNext = out.length() > 0;
        continue;
      }
      if (out.length() == 0) {
        out.append(Character.isDigit(c) ? "input" + c : String.valueOf(Character.toLowerCase(c)));
      } else {
        out.append(upperNext ? Character.toUpperCase(c) : c);
      }
      upperNext = false;
    }
    return out.length() == 0 ? "input" : out.toString();
  }

  /** The shape in words, e.g. {@code int64 [batch, sequence]}. */
  static String describe(HostInput input) {
    String dims = input.getShapeList().stream()
        .map(HostInputs::describe)
        .collect(Collectors.joining(", ", "[", "]"));
    return onnxTypeName(input.getElemType()) + " " + dims;
  }

  private static String describe(Dim d) {
    return d.hasSize() ? Long.toString(d.getSize()) : d.getSymbol();
  }

  private static String onnxTypeName(int elemType) {
    return switch (elemType) {
      case 1 -> "float";
      case 2 -> "uint8";
      case 3 -> "int8";
      case 4 -> "uint16";
      case 5 -> "int16";
      case 6 -> "int32";
      case 7 -> "int64";
      case 8 -> "string";
      case 9 -> "bool";
      case 10 -> "float16";
      case 11 -> "double";
      case 12 -> "uint32";
      case 13 -> "uint64";
      case 16 -> "bfloat16";
      default -> String.format(Locale.ROOT, "elem_type %d", elemType);
    };
  }
}
