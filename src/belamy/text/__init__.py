"""Text conditioning for text-to-image GANs: a caption tokenizer, a GRU text encoder (AttnGAN, Xu et al. 2018), its
contrastive pretraining against images (CLIP's loss, Radford et al. 2021), and a frozen sentence-transformers
encoder loaded from a local folder (optional dependency)."""

from belamy.text.encoder import ImageEncoder, TextEncoder
from belamy.text.pretrain import PretrainedText, TextEncoderError, contrastive_loss, load_text_encoder, \
    pretrain_text_encoder, retrieval_recall, save_text_encoder
from belamy.text.pretrained import SentenceTransformerEncoder, SentenceTransformerTokens, is_sentence_transformer
from belamy.text.tokenizer import PAD, PAD_ID, UNK, UNK_ID, Tokenizer

__all__ = [
    "PAD", "PAD_ID", "UNK", "UNK_ID", "ImageEncoder", "PretrainedText", "SentenceTransformerEncoder",
    "SentenceTransformerTokens", "TextEncoder", "TextEncoderError", "Tokenizer", "contrastive_loss",
    "is_sentence_transformer", "load_text_encoder", "pretrain_text_encoder", "retrieval_recall", "save_text_encoder",
]
