; Inno Setup script for the Windows installer (not built or tested here: this project builds on Linux).
; 1. On Windows, in the project folder:  py -3.11 -m venv .venv  &&  .venv\Scripts\pip install -e .[test,package]
; 2. .venv\Scripts\python packaging\build.py          (PyInstaller one-folder bundle in dist\MegaPortrait, self-tested)
; 3. iscc /DAppVersion=0.1.0 packaging\windows\megaportrait.iss
; Models are not in the installer: they go to %LOCALAPPDATA%\MegaPortrait\models (the model manager,
; or an offline model pack placed beside the installer, fills it).

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif

[Setup]
AppId={{7B0E3F6C-6C2E-4C1B-9C61-5A3D2F1E9B10}
AppName=MegaPortrait Desktop
AppVersion={#AppVersion}
AppPublisher=MegaPortrait
DefaultDirName={autopf}\MegaPortrait
DefaultGroupName=MegaPortrait Desktop
OutputDir=..\..\dist
OutputBaseFilename=MegaPortrait-{#AppVersion}-windows-x64-setup
Compression=lzma2/max
SolidCompression=yes
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
PrivilegesRequiredOverridesAllowed=dialog
WizardStyle=modern

[Files]
Source: "..\..\dist\MegaPortrait\*"; DestDir: "{app}"; Flags: recursesubdirs createallsubdirs ignoreversion
Source: "..\..\README.md"; DestDir: "{app}"; Flags: isreadme

[Icons]
Name: "{group}\MegaPortrait Desktop"; Filename: "{app}\megaportrait.exe"
Name: "{autodesktop}\MegaPortrait Desktop"; Filename: "{app}\megaportrait.exe"; Tasks: desktopicon

[Tasks]
Name: "desktopicon"; Description: "Create a desktop icon"; Flags: unchecked

[Run]
; The same self-test the build runs: proves the installed copy starts and runs the classic engine.
Filename: "{app}\megaportrait.exe"; Parameters: "--self-test"; Flags: runhidden waituntilterminated; StatusMsg: "Checking the installation..."
Filename: "{app}\megaportrait.exe"; Description: "Start MegaPortrait Desktop"; Flags: nowait postinstall skipifsilent
