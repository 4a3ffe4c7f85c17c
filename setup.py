"""Build script: every piece of metadata is read from settings.ini (the nbdev 2 configuration)."""
from configparser import ConfigParser
from pathlib import Path

import setuptools

cfg_path = Path(__file__).parent / 'settings.ini'
parser = ConfigParser(delimiters=['='])
parser.read(cfg_path, encoding='utf-8')
cfg = parser['DEFAULT']

required = ['lib_name', 'version', 'description', 'author', 'author_email', 'license', 'min_python', 'git_url']
missing = [k for k in required if not cfg.get(k)]
if missing: raise ValueError(f'settings.ini is missing {missing}: add them under [DEFAULT]')

licenses = {'apache2': ('Apache Software License 2.0', 'OSI Approved :: Apache Software License')}
lic_name, lic_classifier = licenses[cfg['license']]
statuses = ['1 - Planning', '2 - Pre-Alpha', '3 - Alpha', '4 - Beta', '5 - Production/Stable']

requirements = cfg.get('requirements', '').split()
dev_requirements = cfg.get('dev_requirements', '').split()
scripts = [s.strip() for s in cfg.get('console_scripts', '').split() if s.strip()]
readme = Path(__file__).parent / 'README.md'

setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    long_description=readme.read_text(encoding='utf-8') if readme.exists() else cfg['description'],
    long_description_content_type='text/markdown',
    author=cfg['author'],
    author_email=cfg['author_email'],
    url=cfg['git_url'],
    license=lic_name,
    keywords=cfg.get('keywords', ''),
    classifiers=[f'Development Status :: {statuses[int(cfg["status"]) - 1]}',
                 f'Intended Audience :: {cfg["audience"]}',
                 f'License :: {lic_classifier}',
                 f'Natural Language :: {cfg["language"]}',
                 'Programming Language :: Python :: 3.11'],
    packages=setuptools.find_packages(include=[cfg['lib_name'], cfg['lib_name'] + '.*']),
    include_package_data=True,
    python_requires='>=' + cfg['min_python'],
    install_requires=requirements,
    extras_require={'dev': dev_requirements},
    entry_points={'console_scripts': scripts, 'nbdev': [f'{cfg["lib_path"]}={cfg["lib_path"]}._modidx:d']},
    zip_safe=False,
)
