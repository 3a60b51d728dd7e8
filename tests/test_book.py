"""The book's chapter-5 loop: numpygpt.book against the book's own PyTorch code, from one seed.

Both sides start from `manual_seed(123)` and build their loaders, model and
AdamW in the book's order; nothing is copied between them. The same
generator (numpygpt's is PyTorch's) then gives the same initial weights,
dropout masks and shuffled batches, so the losses agree step by step.
"""

from __future__ import annotations

import numpy as np
import pytest

import numpygpt
from numpygpt import book
from numpygpt.data import create_dataloader
from numpygpt.model import GPTModel
from numpygpt.optim import AdamW
from numpygpt.recipe import default_text
from numpygpt.tokenizer import get_encoding

CFG = {"vocab_size": 50257, "context_length": 16, "emb_dim": 32, "n_heads": 2, "n_layers": 2,
       "drop_rate": 0.1, "qkv_bias": False}
START = "Beautiful is"


def numpygpt_run(capsys: pytest.CaptureFixture[str]) -> tuple[tuple[list, list, list], str, np.ndarray]:
    tok = get_encoding("gpt2")
    text = default_text()
    split = int(0.9 * len(text))
    numpygpt.manual_seed(123)
    train_loader = create_dataloader(text[:split], batch_size=2, max_length=16, stride=16, drop_last=True,
                                     shuffle=True, num_workers=0)
    val_loader = create_dataloader(text[split:], batch_size=2, max_length=16, stride=16, drop_last=False,
                                   shuffle=False, num_workers=0)
    numpygpt.manual_seed(123)
    model = GPTModel(CFG)
    optimizer = AdamW(model.parameters(), lr=0.0004, weight_decay=0.1)
    result = book.train_model_simple(model, train_loader, val_loader, optimizer, "cpu", num_epochs=2,
                                     eval_freq=5, eval_iter=2, start_context=START, tokenizer=tok)
    printed = capsys.readouterr().out
    numpygpt.manual_seed(7)
    ids = book.generate(model, numpygpt.tokenizer.text_to_token_ids(START, tok), max_new_tokens=8,
                        context_size=16, temperature=1.4, top_k=25)
    return result, printed, ids


def torch_run(torch, capsys: pytest.CaptureFixture[str]) -> tuple[tuple[list, list, list], str, np.ndarray]:
    """The book's code (chapters 2 and 5) in PyTorch, with the seed's model from torch_gpt.py."""
    import torch_gpt
    from torch.utils.data import DataLoader, Dataset

    tokenizer = get_encoding("gpt2")

    class GPTDatasetV1(Dataset):
        def __init__(self, txt, tokenizer, max_length, stride):
            self.input_ids, self.target_ids = [], []
            token_ids = tokenizer.encode(txt, allowed_special={"<|endoftext|>"})
            for i in range(0, len(token_ids) - max_length, stride):
                self.input_ids.append(torch.tensor(token_ids[i:i + max_length]))
                self.target_ids.append(torch.tensor(token_ids[i + 1:i + max_length + 1]))

        def __len__(self):
            return len(self.input_ids)

        def __getitem__(self, idx):
            return self.input_ids[idx], self.target_ids[idx]

    def create_dataloader_v1(txt, batch_size, max_length, stride, shuffle, drop_last, num_workers):
        dataset = GPTDatasetV1(txt, tokenizer, max_length, stride)
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last,
                          num_workers=num_workers)

    def calc_loss_batch(input_batch, target_batch, model, device):
        logits = model(input_batch)
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), target_batch.flatten())

    def calc_loss_loader(data_loader, model, device, num_batches=None):
        total_loss = 0.
        num_batches = len(data_loader) if num_batches is None else min(num_batches, len(data_loader))
        for i, (input_batch, target_batch) in enumerate(data_loader):
            if i < num_batches:
                total_loss += calc_loss_batch(input_batch, target_batch, model, device).item()
            else:
                break
        return total_loss / num_batches

    def evaluate_model(model, train_loader, val_loader, device, eval_iter):
        model.eval()
        with torch.no_grad():
            train_loss = calc_loss_loader(train_loader, model, device, num_batches=eval_iter)
            val_loss = calc_loss_loader(val_loader, model, device, num_batches=eval_iter)
        model.train()
        return train_loss, val_loss

    def generate_and_print_sample(model, tokenizer, device, start_context):
        model.eval()
        encoded = torch.tensor(tokenizer.encode(start_context)).unsqueeze(0)
        with torch.no_grad():
            token_ids = torch_gpt.generate_text_simple(model, encoded, 50, model.pos_emb.weight.shape[0])
        print(tokenizer.decode(token_ids.squeeze(0).tolist()).replace("\n", " "))
        model.train()

    def train_model_simple(model, train_loader, val_loader, optimizer, device, num_epochs,
                           eval_freq, eval_iter, start_context, tokenizer):
        train_losses, val_losses, track_tokens_seen = [], [], []
        tokens_seen, global_step = 0, -1
        for epoch in range(num_epochs):
            model.train()
            for input_batch, target_batch in train_loader:
                optimizer.zero_grad()
                loss = calc_loss_batch(input_batch, target_batch, model, device)
                loss.backward()
                optimizer.step()
                tokens_seen += input_batch.numel()
                global_step += 1
                if global_step % eval_freq == 0:
                    train_loss, val_loss = evaluate_model(model, train_loader, val_loader, device, eval_iter)
                    train_losses.append(train_loss)
                    val_losses.append(val_loss)
                    track_tokens_seen.append(tokens_seen)
                    print(f"Ep {epoch + 1} (Step {global_step:06d}): "
                          f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")
            generate_and_print_sample(model, tokenizer, device, start_context)
        return train_losses, val_losses, track_tokens_seen

    def generate(model, idx, max_new_tokens, context_size, temperature=0.0, top_k=None, eos_id=None):
        for _ in range(max_new_tokens):
            idx_cond = idx[:, -context_size:]
            with torch.no_grad():
                logits = model(idx_cond)
            logits = logits[:, -1, :]
            if top_k is not None:
                top_logits, _ = torch.topk(logits, top_k)
                min_val = top_logits[:, -1]
                logits = torch.where(logits < min_val, torch.tensor(float("-inf")), logits)
            if temperature > 0.0:
                probs = torch.softmax(logits / temperature, dim=-1)
                idx_next = torch.multinomial(probs, num_samples=1)
            else:
                idx_next = torch.argmax(logits, dim=-1, keepdim=True)
            if idx_next == eos_id:
                break
            idx = torch.cat((idx, idx_next), dim=1)
        return idx

    text = default_text()
    split = int(0.9 * len(text))
    torch.manual_seed(123)
    train_loader = create_dataloader_v1(text[:split], batch_size=2, max_length=16, stride=16, drop_last=True,
                                        shuffle=True, num_workers=0)
    val_loader = create_dataloader_v1(text[split:], batch_size=2, max_length=16, stride=16, drop_last=False,
                                      shuffle=False, num_workers=0)
    torch.manual_seed(123)
    model = torch_gpt.GPTModel(CFG)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.0004, weight_decay=0.1)
    result = train_model_simple(model, train_loader, val_loader, optimizer, "cpu", num_epochs=2,
                                eval_freq=5, eval_iter=2, start_context=START, tokenizer=tokenizer)
    printed = capsys.readouterr().out
    torch.manual_seed(7)
    ids = generate(model, torch.tensor(tokenizer.encode(START)).unsqueeze(0), max_new_tokens=8,
                   context_size=16, temperature=1.4, top_k=25)
    return result, printed, ids.numpy()


def test_book_loop_runs_and_learns(capsys: pytest.CaptureFixture[str]) -> None:
    (train_losses, val_losses, tokens_seen), printed, ids = numpygpt_run(capsys)
    assert len(train_losses) == len(val_losses) == len(tokens_seen) >= 2
    assert train_losses[-1] < train_losses[0]
    assert tokens_seen[0] == 2 * 16 and printed.startswith("Ep 1 (Step 000000): Train loss ")
    assert printed.count("\n" + START) == 2 and ids.shape == (1, 3 + 8)


def test_book_loop_matches_the_books_pytorch_code_from_one_seed(capsys: pytest.CaptureFixture[str]) -> None:
    torch = pytest.importorskip("torch")
    (ours_train, ours_val, ours_seen), ours_printed, ours_ids = numpygpt_run(capsys)
    (theirs_train, theirs_val, theirs_seen), theirs_printed, theirs_ids = torch_run(torch, capsys)
    assert ours_seen == theirs_seen
    np.testing.assert_allclose(ours_train, theirs_train, rtol=2e-5)
    np.testing.assert_allclose(ours_val, theirs_val, rtol=2e-5)
    assert ours_printed == theirs_printed  # every "Ep ... (Step ...)" line and both epochs' samples
    np.testing.assert_array_equal(ours_ids, theirs_ids)


def test_book_generate_top_k_on_a_batch() -> None:
    numpygpt.manual_seed(0)
    model = GPTModel(dict(CFG, vocab_size=60, drop_rate=0.0)).eval()
    ids = np.array([[1, 2, 3], [4, 5, 6]])
    out = book.generate(model, ids, max_new_tokens=4, context_size=16, temperature=1.0, top_k=3)
    assert out.shape == (2, 7) and np.array_equal(out[:, :3], ids)
    greedy = book.generate(model, ids, max_new_tokens=4, context_size=16)
    from numpygpt.generate import generate_text_simple
    np.testing.assert_array_equal(greedy, generate_text_simple(model, ids, 4, 16))
