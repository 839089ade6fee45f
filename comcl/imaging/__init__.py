"""Image formats and pixel operations that several stages share: codecs, the Parquet image store, resized caches, batched augmentation, lesion classes and mask boxes."""
