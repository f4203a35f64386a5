"""OpenCV's four-stage pipeline, as `xpu vision` runs it by default: RGB
to gray (skipped for a gray image), Gaussian blur (sigma 1.5, border replicated), Sobel gradient
magnitude, binary threshold at 96; on a PNG, the median of ten warm runs
(as `xpu vision --bench` reports), with the thread count given (default 2).

Prints lines such as: opencv vision 512x512 100.2 megapixels/s (2.62 ms) threads=2
"""
import sys
import time

import cv2
import numpy as np

path = sys.argv[1]
threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
cv2.setNumThreads(threads)
img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
if img.ndim == 3:
    img = cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2RGB)


def pipeline(image):
    # A gray photograph skips the first stage, as `xpu vision` is told to.
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    blur = cv2.GaussianBlur(gray, (0, 0), 1.5, borderType=cv2.BORDER_REPLICATE)
    f = blur.astype(np.float32)
    gx = cv2.Sobel(f, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.Sobel(f, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE)
    edges = cv2.convertScaleAbs(cv2.magnitude(gx, gy))
    return cv2.threshold(edges, 96, 255, cv2.THRESH_BINARY)[1]


pipeline(img)
times = []
for _ in range(10):
    t = time.perf_counter()
    pipeline(img)
    times.append(time.perf_counter() - t)
median = sorted(times)[len(times) // 2]
h, w = img.shape[:2]
print(f"opencv vision {w}x{h} {w * h / median / 1e6:.1f} megapixels/s ({median * 1e3:.2f} ms) threads={threads}")
