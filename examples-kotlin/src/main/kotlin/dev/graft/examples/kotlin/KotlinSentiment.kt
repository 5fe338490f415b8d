package dev.graft.examples.kotlin

import dev.graft.annotations.Classification
import dev.graft.annotations.Graft
import dev.graft.annotations.Lora

/**
 * LoRA (rank 8, alpha 16) on the query and value projections of all-MiniLM-L6-v2 plus a 2-class
 * head, declared in Kotlin. kapt runs the Graft annotation processor over this interface at build
 * time; it reads the host from the class path and writes the Java class `KotlinSentimentGraft`
 * and the graft's ONNX resources beside it.
 */
@Graft(host = "all-minilm-l6-v2.onnx")
@Lora(target = ".*/attention/self/(query|value)/MatMul", rank = 8, alpha = 16.0)
@Classification(labels = 2)
interface KotlinSentiment
