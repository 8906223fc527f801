"""Seed-era location of the Math Agent workflow (``tutorial.math_agent->ExampleMathLearn``)."""

from tutorial.example_math_agent.math_agent import ExampleMathLearn, FinalResult, extract_final_answer

__all__ = ["ExampleMathLearn", "FinalResult", "extract_final_answer"]
