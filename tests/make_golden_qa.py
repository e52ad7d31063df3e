"""Generate tests/golden/pipelines/question_answering.json.gz: the outputs of transformers 4.57's
question-answering pipeline (transformers 5 has none) on the random-weight BertForQuestionAnswering and the
questions and contexts of tests/task_models.py: long contexts split into several windows, top_k, short answers,
handle_impossible_answer, align_to_words.

Needs requirements-golden-qa.txt (torch==2.13.0, transformers==4.57.6); never needed to run the tests.
Run from the repository root:  python tests/make_golden_qa.py
"""
import os
import tempfile

import numpy as np
import transformers
from transformers import AutoTokenizer, BertForQuestionAnswering, pipeline

import task_models as tm

assert transformers.__version__.startswith("4.57."), transformers.__version__
CASES = [{}, {"top_k": 3}, {"top_k": 2, "handle_impossible_answer": True},
         {"max_seq_len": 64, "doc_stride": 16, "top_k": 4},  # many windows
         {"max_seq_len": 48, "doc_stride": 20, "max_answer_len": 3, "handle_impossible_answer": True},
         {"top_k": 15, "max_answer_len": 4},  # more answers than some windows have candidates
         {"top_k": 3, "align_to_words": False}, {"max_seq_len": 64, "doc_stride": 16, "align_to_words": False}]
# contexts of a word or two with a top_k that asks for every span: spans ending at [CLS] (score 0) come in
SHORT_INPUTS = (["Who?", "What happened?", "Who?", "Who is it?"], ["a", "a", "a b", "Lang Zürich"])
SHORT_CASES = [{"top_k": 12}, {"top_k": 20}]


def main():
    questions, contexts = tm.qa_inputs()
    with tempfile.TemporaryDirectory() as tmp:
        folder = tm.write_task_model(os.path.join(tmp, "qa"), "qa")
        model, info = BertForQuestionAnswering.from_pretrained(folder, output_loading_info=True)
        assert not any(info.values()), info
        answer = pipeline("question-answering", model=model.eval(), tokenizer=AutoTokenizer.from_pretrained(folder),
                          device="cpu")
        assert answer.tokenizer.is_fast
        cases = []
        for kwargs, inputs in [(kwargs, None) for kwargs in CASES] + [(kwargs, SHORT_INPUTS) for kwargs in SHORT_CASES]:
            outputs = [answer(question=q, context=c, **kwargs) for q, c in zip(*(inputs or (questions, contexts)))]
            outputs = [o if isinstance(o, list) else [o] for o in outputs]
            cases.append({"model": "qa", "kwargs": kwargs, "outputs": [[{k: v.item() if isinstance(v, np.generic)
                                                                         else v for k, v in a.items()} for a in o]
                                                                       for o in outputs],
                          **({"inputs": inputs} if inputs else {})})
    tm.write_golden("question_answering", cases)


if __name__ == "__main__":
    main()
