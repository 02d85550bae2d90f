# -*- coding: utf-8 -*-
"""
@article{MoralesMartinez2025,
title = {Membrane and vesicle structure detection in cryo-electron tomography based on deep learning},
journal = {Journal of Structural Biology},
pages = {108258},
year = {2025},
doi = {10.1016/j.jsb.2025.108258},
url = {https://doi.org/10.1016/j.jsb.2025.108258},
author = {Morales-Martinez, Alain and Garduño, Edgar and Carazo, José María and Sorzano, Carlos Oscar S. and Vilas, José Luis}
}

@article{Kremer1996,
title = {Computer visualization of three-dimensional image data using IMOD},
journal = {Journal of Structural Biology},
volume = {116},
pages = {71--76},
year = {1996},
doi = {10.1006/jsbi.1996.0013},
author = {Kremer, James R. and Mastronarde, David N. and McIntosh, J. Richard}
}

@article{Fernandez2003,
title = {An improved algorithm for anisotropic nonlinear diffusion for denoising cryo-tomograms},
journal = {Journal of Structural Biology},
volume = {144},
pages = {152--161},
year = {2003},
doi = {10.1016/j.jsb.2003.09.010},
author = {Fernández, José-Jesús and Li, Sam}
}

@article{Moreno2018,
title = {TomoEED: fast edge-enhancing denoising of tomographic volumes},
journal = {Bioinformatics},
volume = {34},
pages = {3776--3778},
year = {2018},
doi = {10.1093/bioinformatics/bty435},
author = {Moreno, J. J. and Martínez-Sánchez, A. and Martínez, J. A. and Garzón, E. M. and Fernández, J. J.}
}

@article{Agulleiro2011,
title = {Fast tomographic reconstruction on multicore computers},
journal = {Bioinformatics},
volume = {27},
pages = {582--583},
year = {2011},
doi = {10.1093/bioinformatics/btq692},
author = {Agulleiro, J. I. and Fernández, J. J.}
}

@article{Stimper2019,
title = {Multidimensional contrast limited adaptive histogram equalization},
journal = {IEEE Access},
volume = {7},
pages = {165437--165447},
year = {2019},
doi = {10.1109/ACCESS.2019.2952899},
author = {Stimper, Vincent and Bauer, Stefan and Ernstorfer, Ralph and Schölkopf, Bernhard and Xian, R. Patrick}
}

@article{Zuiderveld1994,
title = {Contrast limited adaptive histogram equalization},
journal = {Graphics Gems IV},
pages = {474--485},
year = {1994},
author = {Zuiderveld, Karel}
}

@article{MartinezSanchez2024,
title = {Simulating the cellular context in synthetic datasets for cryo-electron tomography},
journal = {IEEE Transactions on Medical Imaging},
volume = {43},
pages = {3742--3754},
year = {2024},
doi = {10.1109/TMI.2024.3398401},
author = {Martínez-Sánchez, Antonio and Jasnin, Marion and Phelippeau, Harold and Lamm, Lorenz}
}

@article{Kiewisz2024,
title = {Accurate and fast segmentation of filaments and membranes in micrographs and tomograms with TARDIS},
journal = {bioRxiv},
pages = {2024.12.19.629196},
year = {2024},
doi = {10.1101/2024.12.19.629196},
author = {Kiewisz, Robert and Fabig, Gunar and Conway, William and Johnston, Jake and Kostyuchenko, Victor A. and Bařinka, Cyril and Clarke, Oliver and Magaj, Magdalena and Yazdkhasti, Hossein and Vallese, Francesca and Lok, Shee-Mei and Redemann, Stefanie and Müller-Reichert, Thomas and Bepler, Tristan}
}

@inproceedings{Isola2017,
title = {Image-to-image translation with conditional adversarial networks},
booktitle = {IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
pages = {5967--5976},
year = {2017},
doi = {10.1109/CVPR.2017.632},
author = {Isola, Phillip and Zhu, Jun-Yan and Zhou, Tinghui and Efros, Alexei A.}
}
"""
