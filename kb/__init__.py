"""kb: an internal knowledge base that answers from company files and shows where each answer came from.

Data flows one way: file -> elements (parsing) -> chunks (chunking) -> vectors (embedding)
-> index -> passages (retrieval) -> answer (answering). `kb.service.KnowledgeBase` ties the stages
together for the command line and the app.
"""

__version__ = "0.1.0"
