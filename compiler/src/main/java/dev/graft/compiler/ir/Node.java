package dev.graft.compiler.ir;

import dev.graft.spec.onnx.Onnx.AttributeProto;
import dev.graft.spec.onnx.Onnx.TensorProto;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.SortedMap;
import java.util.TreeMap;
import org.jspecify.annotations.Nullable;

/**
 * One operator application. Inputs are value names, with {@code ""} for an omitted optional
 * input (ONNX convention). Attributes are kept as their ONNX protos, sorted by name.
 */
public record Node(
    String name,
    String opType,
    String domain,
    List<String> inputs,
    List<String> outputs,
    SortedMap<String, AttributeProto> attributes) {

  public Node {
    inputs = List.copyOf(inputs);
    outputs = List.copyOf(outputs);
    attributes = Collections.unmodifiableSortedMap(new TreeMap<>(attributes));
  }

  public String input(int i) {
    return i < inputs.size() ? inputs.get(i) : "";
  }

  public boolean hasInput(int i) {
    return !input(i).isEmpty();
  }

  public String output(int i) {
    return outputs.get(i);
  }

  public boolean has(String attribute) {
    return attributes.containsKey(attribute);
  }

  public long attrInt(String attribute, long fallback) {
    AttributeProto a = attributes.get(attribute);
    return a == null ? fallback : a.getI();
  }

  public float attrFloat(String attribute, float fallback) {
    AttributeProto a = attributes.get(attribute);
    return a == null ? fallback : a.getF();
  }

  public @Nullable List<Long> attrInts(String attribute) {
    AttributeProto a = attributes.get(attribute);
    return a == null ? null : a.getIntsList();
  }

  public @Nullable String attrString(String attribute) {
    AttributeProto a = attributes.get(attribute);
    return a == null ? null : a.getS().toStringUtf8();
  }

  public @Nullable TensorProto attrTensor(String attribute) {
    AttributeProto a = attributes.get(attribute);
    return a == null || !a.hasT() ? null : a.getT();
  }

  /** A copy with one input replaced. */
  public Node withInput(int i, String value) {
    List<String> in = new ArrayList<>(inputs);
    while (in.size() <= i) {
      in.add("");
    }
    in.set(i, value);
    return new Node(name, opType, domain, in, outputs, attributes);
  }

  public Node withInputs(List<String> newInputs) {
    return new Node(name, opType, domain, newInputs, outputs, attributes);
  }

  public Node withoutAttribute(String attribute) {
    SortedMap<String, AttributeProto> a = new TreeMap<>(attributes);
    a.remove(attribute);
    return new Node(name, opType, domain, inputs, outputs, a);
  }

  /** Attribute builders for {@link Graph#add}. */
  public static AttributeProto attr(String name, long value) {
    return AttributeProto.newBuilder()
        .setName(name)
        .setType(AttributeProto.AttributeType.INT)
        .setI(value)
        .build();
  }

  public static AttributeProto attr(String name, float value) {
    return AttributeProto.newBuilder()
        .setName(name)
        .setType(AttributeProto.AttributeType.FLOAT)
        .setF(value)
        .build();
  }

  public static AttributeProto attr(String name, List<Long> values) {
    return AttributeProto.newBuilder()
        .setName(name)
        .setType(AttributeProto.AttributeType.INTS)
        .addAllInts(values)
        .build();
  }

  public static AttributeProto attr(String name, TensorProto value) {
    return AttributeProto.newBuilder()
        .setName(name)
        .setType(AttributeProto.AttributeType.TENSOR)
        .setT(value)
        .build();
  }

  public static SortedMap<String, AttributeProto> attrs(AttributeProto... list) {
    SortedMap<String, AttributeProto> m = new TreeMap<>();
    for (AttributeProto a : list) {
      m.put(a.getName(), a);
    }
    return m;
  }

  public static SortedMap<String, AttributeProto> attrs(Map<String, AttributeProto> map) {
    return new TreeMap<>(map);
  }
}
